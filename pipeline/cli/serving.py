"""Commands: serve (vLLM), persona build, chat (the multi-agent demo), naptha package/publish."""

from __future__ import annotations

import asyncio
import datetime as dt
import shlex
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.app import app, state, user_errors
from pipeline.inference import ChatClient, InferenceConfig
from pipeline.naptha.package import Packaged
from pipeline.progress import console, stdout
from pipeline.serving import ServeError, VllmServer, served_name

serve_app = typer.Typer(help="Serve the base model and LoRA adapters with vLLM (OpenAI-compatible).")
adapters_app = typer.Typer(
    help="Load, unload and list LoRA adapters on a running server.", no_args_is_help=True
)
persona_app = typer.Typer(
    help="Persona files (ElizaOS character files) from the store.", no_args_is_help=True
)
naptha_app = typer.Typer(help="Package and publish the Naptha modules.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")
serve_app.add_typer(adapters_app, name="adapters")
app.add_typer(persona_app, name="persona")
app.add_typer(naptha_app, name="naptha")


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{what} must look like name=path, got {value!r}")
        out[name] = path
    return out


# -- serve ----------------------------------------------------------------------------------------


@serve_app.callback(invoke_without_command=True)
@user_errors
def serve(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="base model folder (default: serve.model)")] = None,
    adapter: Annotated[
        list[str] | None, typer.Option(help="LoRA adapter name=folder (repeatable)", show_default=False)
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (default: serve.port, 8000)")] = None,
    name: Annotated[str | None, typer.Option(help="served model name (default: the folder name)")] = None,
    python: Annotated[str | None, typer.Option(help="python of the vLLM env (default: serve.python)")] = None,
    cpu: Annotated[bool, typer.Option(help="CPU settings: float32, eager, 4 GiB KV cache")] = False,
    max_model_len: Annotated[int | None, typer.Option(help="context length")] = None,
    print_command: Annotated[bool, typer.Option(help="print the vLLM command and exit")] = False,
) -> None:
    """Start vLLM's OpenAI-compatible server with LoRA adapters; wait until healthy; serve until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.serving import vllm_command

    config = state.settings().serve.model_copy(deep=True)
    updates = {
        "model": model,
        "port": port,
        "served_model_name": name,
        "python": python,
        "max_model_len": max_model_len,
    }
    for key, value in updates.items():
        if value is not None:
            setattr(config, key, value)
    config.adapters |= _pairs(adapter, "--adapter")
    if cpu:
        config.dtype, config.enforce_eager = "float32", True
        config.cpu_kvcache_space_gib = config.cpu_kvcache_space_gib or 4
    if print_command:
        stdout.print(shlex.join(vllm_command(config)), soft_wrap=True, markup=False)
        return
    server = VllmServer(config)
    server.start()
    try:
        with console.status(f"starting vLLM (log: {config.log_file})"):
            seconds = server.wait_ready()
        adapters = ", ".join(config.adapters) or "none"
        stdout.print(
            f"serving {served_name(config)} at {server.base_url} (ready in {seconds:.0f} s; adapters: {adapters}); "
            "Ctrl-C stops"
        )
        signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops vLLM too, like Ctrl-C
        assert server.process is not None
        code = server.process.wait()
        raise ServeError(f"vLLM exited with code {code}; see {config.log_file}")
    except KeyboardInterrupt:
        stdout.print("stopping vLLM")
    finally:
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _admin_client(base_url: str | None) -> ChatClient:
    config = state.settings().inference
    if base_url:
        config = config.model_copy(update={"base_url": base_url.rstrip("/")})
    return ChatClient(config)


BaseUrl = Annotated[
    str | None, typer.Option("--base-url", help="server /v1 URL (default: inference.base_url)")
]


@adapters_app.command("list")
@user_errors
def adapters_list(base_url: BaseUrl = None) -> None:
    """The served models: the base and its LoRA adapters."""
    with _admin_client(base_url) as client:
        models = client.list_models()
    table = Table("model", "parent (base of an adapter)", title_justify="left")
    for m in models:
        table.add_row(str(m.get("id")), str(m.get("parent") or ""))
    stdout.print(table)


@adapters_app.command("load")
@user_errors
def adapters_load(
    name: str,
    path: Path,
    base_url: BaseUrl = None,
    replace: Annotated[bool, typer.Option(help="replace an adapter of the same name")] = False,
) -> None:
    """Load a LoRA adapter folder under NAME (the server must see the same path)."""
    if not (path / "adapter_config.json").is_file():
        raise ValueError(f"{path} holds no adapter_config.json (a PEFT LoRA folder)")
    with _admin_client(base_url) as client:
        client.load_adapter(name, str(path.resolve()), replace=replace)
    stdout.print(f"loaded adapter {name} from {path}")


@adapters_app.command("unload")
@user_errors
def adapters_unload(name: str, base_url: BaseUrl = None) -> None:
    """Unload the LoRA adapter NAME."""
    with _admin_client(base_url) as client:
        client.unload_adapter(name)
    stdout.print(f"unloaded adapter {name}")


# -- persona --------------------------------------------------------------------------------------


@persona_app.command("build")
@user_errors
def persona_build(
    account: Annotated[str, typer.Option(help="the account's handle")],
    out: Annotated[Path | None, typer.Option(help="persona file (default personas/<account>.json)")] = None,
    posts: Annotated[int, typer.Option(help="postExamples")] = 12,
    messages: Annotated[int, typer.Option(help="messageExamples (reply pairs)")] = 8,
    polish: Annotated[bool, typer.Option(help="let a model rewrite bio and lore (inference client)")] = False,
    model: Annotated[str | None, typer.Option(help="model for --polish (default inference.model)")] = None,
) -> None:
    """An ElizaOS character file from the account's tweets in the store."""
    from pipeline.persona import PersonaSpec, build_persona, polish_persona

    settings = state.settings()
    spec = PersonaSpec(posts=posts, messages=messages, weights=settings.datasets.quality)
    with console.status(f"building persona @{account}"):
        persona, stats = build_persona(state.store(), account, spec)
    if polish:
        with ChatClient(settings.inference) as client, console.status("polishing with the model"):
            persona = polish_persona(persona, client, model)
    out = out or Path("personas") / f"{stats['username']}.json"
    persona.save(out)
    stdout.print(
        f"{out}: {persona.name}, {stats['tweets']:,} tweets ({stats['replies']:,} replies), "
        f"{len(persona.postExamples)} posts, {len(persona.messageExamples)} reply pairs, "
        f"topics: {', '.join(persona.topics[:6])}"
    )


# -- chat -----------------------------------------------------------------------------------------


def _load_personas(names: list[str], persona_dir: Path) -> list[object]:
    from pipeline.persona import Persona, build_persona

    personas: list[object] = []
    for name in names:
        path = Path(name) if name.endswith(".json") else persona_dir / f"{name}.json"
        if path.is_file():
            personas.append(Persona.load(path))
        else:  # no file yet: build it from the store on the fly
            persona, _ = build_persona(state.store(), name)
            personas.append(persona)
    return personas


@app.command()
@user_errors
def chat(
    personas: Annotated[
        str, typer.Option(help="comma list: persona files' names (personas/<name>.json) or handles")
    ],
    topic: Annotated[str, typer.Option(help="what they talk about")],
    rounds: Annotated[int, typer.Option(help="rounds (each persona speaks once a round)")] = 6,
    policy: Annotated[
        str, typer.Option(help="round_robin or relevance (most relevant speaker next)")
    ] = "round_robin",
    base_url: BaseUrl = None,
    model: Annotated[str | None, typer.Option(help="served model or adapter for every persona")] = None,
    max_tokens: Annotated[int, typer.Option(help="per turn")] = 128,
    temperature: Annotated[float, typer.Option()] = 0.8,
    persona_dir: Annotated[Path, typer.Option(help="where persona files are")] = Path("personas"),
    out: Annotated[
        Path | None, typer.Option(help="transcript JSONL (default out/chats/<time>.jsonl)")
    ] = None,
) -> None:
    """Personas take turns on a topic through the model server; the transcript prints live and is saved."""
    from pipeline.chat import ChatEnvironment, PersonaAgent, Turn
    from pipeline.persona import Persona

    if policy not in ("round_robin", "relevance"):
        raise ValueError("--policy must be round_robin or relevance")
    loaded = [p for p in _load_personas(_csv(personas), persona_dir) if isinstance(p, Persona)]
    config: InferenceConfig = state.settings().inference
    if base_url:
        config = config.model_copy(update={"base_url": base_url.rstrip("/")})
    if model:
        config = config.model_copy(update={"model": model})
    colors = ["cyan", "magenta", "green", "yellow", "blue", "red"]

    def show(turn: Turn) -> None:
        color = colors[[p.name for p in loaded].index(turn.speaker) % len(colors)]
        stdout.print(
            f"[bold {color}]{escape(turn.speaker)}[/] [dim](round {turn.round}, {turn.latency_s:.2f} s)[/] "
            f"{escape(turn.text)}"
        )

    async def go() -> object:
        async with ChatClient(config) as client:
            agents = [PersonaAgent(p, client, max_tokens=max_tokens, temperature=temperature) for p in loaded]
            env = ChatEnvironment(agents, topic, rounds=rounds, policy=policy)  # type: ignore[arg-type]
            return await env.run(on_turn=show)

    stdout.print(f"[bold]topic:[/] {escape(topic)}  ({', '.join(p.name for p in loaded)}; {policy})")
    transcript = asyncio.run(go())
    from pipeline.chat import Transcript

    assert isinstance(transcript, Transcript)
    out = out or Path("out/chats") / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.jsonl"
    transcript.save_jsonl(out)
    tokens = transcript.completion_tokens
    rate = tokens / transcript.wall_s if transcript.wall_s else 0.0
    stdout.print(
        f"{len(transcript.turns)} turns, stopped: {transcript.stop_reason}; {tokens:,} tokens in "
        f"{transcript.wall_s:.1f} s ({rate:,.1f} tokens/s); transcript: {out}"
    )
    if transcript.stop_reason.startswith("model error"):
        raise typer.Exit(1)


# -- naptha ---------------------------------------------------------------------------------------


def _module_url(repo_base: str | None, name: str) -> str:
    return f"{repo_base.rstrip('/')}/{name}" if repo_base else f"https://github.com/<your-org>/{name}"


@naptha_app.command("package")
@user_errors
def naptha_package(
    out: Annotated[Path, typer.Option(help="where the module repos go")] = Path("out/naptha"),
    repo_base: Annotated[
        str | None,
        typer.Option(help="git host prefix, e.g. https://github.com/org (module_url = <base>/<name>)"),
    ] = None,
    version: Annotated[str, typer.Option(help="module_version and git tag")] = "v0.1",
    requirement: Annotated[
        str | None,
        typer.Option(
            help="how the modules install this project (default: naptha-personas==<installed version>)"
        ),
    ] = None,
    persona_dir: Annotated[Path, typer.Option(help="persona files to publish")] = Path("personas"),
    persona_module: Annotated[str, typer.Option(help="name of the persona repo")] = "tpot_personas",
) -> None:
    """One standalone, tagged git repo per module (and one for the persona files), validated."""
    _package_all(out, repo_base, version, requirement, persona_dir, persona_module, show=True)


def _package_all(
    out: Path,
    repo_base: str | None,
    version: str,
    requirement: str | None,
    persona_dir: Path,
    persona_module: str,
    *,
    show: bool,
) -> list[Packaged]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from pipeline.naptha.package import (
        VERSION,
        module_sources,
        package_module,
        package_personas,
        validate_module,
        validate_personas,
    )

    if not VERSION.match(version):
        raise ValueError(f"--version {version!r} is not like v0.1")
    if requirement is None:
        try:
            requirement = f"naptha-personas=={installed('naptha-personas')}"
        except PackageNotFoundError:
            requirement = "naptha-personas"
    items: list[Packaged] = []
    table = Table("module", "type", "folder", "tag", "module_url", "problems", title_justify="left")
    for source in module_sources():
        item = package_module(
            source,
            out,
            requirement=requirement,
            version=version,
            module_url=_module_url(repo_base, source.name),
        )
        item.problems = validate_module(item.path, item.module_type)
        items.append(item)
    personas = package_personas(
        persona_dir,
        out,
        name=persona_module,
        version=version,
        module_url=_module_url(repo_base, persona_module),
    )
    personas.problems = validate_personas(personas.path)
    items.append(personas)
    for it in items:
        table.add_row(
            it.name, it.module_type, str(it.path), it.version, it.module_url, "; ".join(it.problems) or "none"
        )
    if show:
        stdout.print(table)
    if any(it.problems for it in items):
        raise ValueError("some modules would be rejected; see the problems column")
    return items


@naptha_app.command("publish")
@user_errors
def naptha_publish(
    repo_base: Annotated[
        str | None, typer.Option(help="git host prefix the module repos are pushed to (required to publish)")
    ] = None,
    out: Annotated[Path, typer.Option(help="where the module repos go")] = Path("out/naptha"),
    version: Annotated[str, typer.Option(help="module_version and git tag")] = "v0.1",
    requirement: Annotated[str | None, typer.Option(help="how the modules install this project")] = None,
    persona_dir: Annotated[Path, typer.Option(help="persona files to publish")] = Path("personas"),
    persona_module: Annotated[str, typer.Option(help="name of the persona repo")] = "tpot_personas",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="validate and print the commands only")] = False,
) -> None:
    """Package, validate with naptha-sdk's models, then register every module on the hub with the naptha CLI."""
    from pipeline.naptha.package import (
        PackageError,
        hub_env_missing,
        publish_commands,
        run_commands,
    )

    if not dry_run and not repo_base:
        raise ValueError("--repo-base is required to publish (where the module repos are pushed)")
    items = _package_all(out, repo_base, version, requirement, persona_dir, persona_module, show=True)
    stdout.print("[bold]push each repo with its tag, then run:[/]" if dry_run else "[bold]publishing[/]")
    for item in items:
        commands = publish_commands(item)
        stdout.print(f"# {item.name}: git -C {item.path} push <remote> main --tags")
        for command in commands:
            stdout.print(
                f"(cd {shlex.quote(str(item.path))} && {escape(shlex.join(command))})", soft_wrap=True
            )
        if not dry_run:
            try:
                run_commands(item, commands)
            except PackageError as exc:
                raise ValueError(str(exc)) from exc
    if dry_run:
        missing = hub_env_missing()
        note = f"; to publish, set {', '.join(missing)}" if missing else ""
        stdout.print(f"dry run: {len(items)} modules valid{note}")
    else:
        stdout.print(f"published {len(items)} modules")
