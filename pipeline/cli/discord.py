"""Commands: discord extract, users, generate (Discord exports to persona instruction data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from pipeline.cli.app import app, state, user_errors
from pipeline.config import DiscordConfig
from pipeline.gcpause import gc_paused
from pipeline.progress import progress_task, stdout
from pipeline.store.atomic import atomic_write_bytes

discord_app = typer.Typer(help="Discord exports to per-person instruction data.", no_args_is_help=True)
app.add_typer(discord_app, name="discord")


def _config(**overrides: object) -> DiscordConfig:
    config = state.settings().discord.model_copy(deep=True)
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    return DiscordConfig.model_validate(config.model_dump())


def _table(title: str, rows: dict[str, object]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table


@discord_app.command("extract")
@user_errors
def extract(
    inputs: Annotated[
        list[Path],
        typer.Option("--input", "-i", help="export files or folders (DCE JSON, compact, ai-news raw)"),
    ],
    out: Annotated[Path, typer.Option(help="data folder to write")],
    min_messages: Annotated[
        int | None, typer.Option(help="meaningful messages a conversation needs (default 3)")
    ] = None,
    max_gap_minutes: Annotated[
        float | None, typer.Option(help="silence that starts a new conversation (default 15)")
    ] = None,
    blocklist: Annotated[
        Path | None, typer.Option(help="file of terms, one per line: messages containing one are dropped")
    ] = None,
) -> None:
    """Load, deduplicate, filter, scrub and thread Discord exports into a data folder."""
    from pipeline.discord.extract import extract as run_extract
    from pipeline.discord.loaders import discover

    terms = blocklist.read_text().splitlines() if blocklist is not None else None
    config = _config(min_messages=min_messages, max_gap_minutes=max_gap_minutes, blocklist=terms)
    files = discover(inputs)
    if not files:
        raise ValueError("no .json files in the given inputs")
    with progress_task("discord extract", len(files), "messages") as bar:
        result = run_extract(files, out, config, on_file=lambda _path, n: bar.advance(n))
    report = result.report
    loaded = report["loaded"]
    threading = report["threading"]
    rate = loaded["messages_read"] / max(result.seconds, 1e-9)
    stdout.print(
        _table(
            f"discord extract -> {out}",
            {
                "files": loaded["files"],
                "messages read": loaded["messages_read"],
                "duplicates (overlapping exports)": loaded["duplicates"],
                "skipped": ", ".join(f"{k} {v:,}" for k, v in loaded["skipped"].items()) or "0",
                "clock skew repaired": loaded["clock_skew"],
                "dropped": ", ".join(f"{k} {v:,}" for k, v in report["dropped"].items()) or "0",
                "messages kept": report["kept"],
                "replies (resolved)": f"{threading.get('replies', 0):,} ({threading.get('replies_resolved', 0):,})",
                "conversations (kept)": f"{threading['conversations']:,} ({threading.get('conversations_kept', 0):,})",
                "not targets": ", ".join(f"{k} {v:,}" for k, v in report["not_targets"].items()) or "0",
                "scrubbed": ", ".join(f"{k} {v:,}" for k, v in report["privacy"].items()) or "0",
                "time": f"{result.seconds:.2f} s ({rate:,.0f} messages/s)",
            },
        )
    )
    if result.failed:
        failed = Table(title=f"{len(result.failed)} file(s) not read", title_justify="left")
        failed.add_column("file")
        failed.add_column("reason")
        for path, reason in result.failed.items():
            failed.add_row(path, reason)
        stdout.print(failed)
        raise typer.Exit(1)


@discord_app.command("users")
@user_errors
def users(
    input_dir: Annotated[Path, typer.Option("--input", "-i", help="data folder from `discord extract`")],
    out: Annotated[Path, typer.Option(help="profiles JSON to write")],
    min_messages: Annotated[int | None, typer.Option(help="messages a persona needs (default 50)")] = None,
    top_users: Annotated[int | None, typer.Option(help="personas to pick (default 50)")] = None,
    llm_summary: Annotated[
        bool, typer.Option(help="add an LLM-written summary to each profile ([inference] endpoint)")
    ] = False,
) -> None:
    """Per-user activity, the top regular users, and their personality profiles."""
    from pipeline.discord.extract import read_data
    from pipeline.discord.profiles import build_profiles
    from pipeline.discord.profiles import llm_summary as summarize
    from pipeline.discord.users import summary, user_stats
    from pipeline.discord.users import top_users as pick

    settings = state.settings()
    config = _config(min_user_messages=min_messages, top_users=top_users)
    data = read_data(input_dir)
    with gc_paused():
        stats = user_stats(data)
        chosen = pick(stats, min_messages=config.min_user_messages, top=config.top_users)
        profiles = build_profiles(data, chosen)
    if llm_summary or config.llm_summary:
        from pipeline.inference import ChatClient

        with (
            ChatClient(settings.inference) as client,
            progress_task("llm summaries", len(profiles), "profiles") as bar,
        ):
            for profile in profiles:
                profile.llm_summary = summarize(profile, client)
                bar.advance(1)
    document = {
        "summary": summary(stats),
        "config": {"min_messages": config.min_user_messages, "top_users": config.top_users},
        "users": [
            {"stats": s.model_dump(), "profile": p.model_dump()}
            for s, p in zip(chosen, profiles, strict=True)
        ],
    }
    atomic_write_bytes(out, orjson.dumps(document, option=orjson.OPT_INDENT_2))
    table = Table(title=f"top {len(chosen)} users -> {out}", title_justify="left")
    for column in ("#", "user", "messages", "days", "conversations", "score", "topics"):
        table.add_column(column, justify="right" if column not in ("user", "topics") else "left")
    for rank, (s, p) in enumerate(zip(chosen, profiles, strict=True), 1):
        table.add_row(
            str(rank),
            s.display_name,
            f"{s.messages:,}",
            str(s.days_active),
            str(s.conversations),
            f"{s.score:.1f}",
            ", ".join(p.topics[:4]),
        )
    stdout.print(table)
    stdout.print(f"{summary(stats)}")


@discord_app.command("generate")
@user_errors
def generate(
    input_dir: Annotated[Path, typer.Option("--input", "-i", help="data folder from `discord extract`")],
    profiles_path: Annotated[Path, typer.Option("--profiles", help="profiles from `discord users`")],
    out: Annotated[Path, typer.Option(help="train JSONL; other splits and the dataset folder go beside it")],
    examples_per_user: Annotated[int | None, typer.Option(help="examples per persona (default 200)")] = None,
    context_window: Annotated[
        int | None, typer.Option(help="earlier messages shown, at most (default 10)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed for sampling, templates and splits")] = None,
    dataset_dir: Annotated[
        Path | None, typer.Option(help="Hugging Face dataset folder (default: <out>-dataset)")
    ] = None,
    repo_path: Annotated[
        str | None,
        typer.Option(help="elizaos/knowledge: a local clone or a git URL (a separate, low-quality source)"),
    ] = None,
    repo_cache: Annotated[
        Path, typer.Option(help="where a --repo-path URL is cloned (pulled when already there)")
    ] = Path("data/raw/elizaos-knowledge"),
) -> None:
    """Instruction examples for the profiled personas: JSONL per split and a dataset folder with a card."""
    from pipeline.discord.extract import read_data
    from pipeline.discord.generate import generate as run_generate
    from pipeline.discord.profiles import Profile

    config = _config(examples_per_user=examples_per_user, context_window=context_window, seed=seed)
    if not profiles_path.is_file():
        raise FileNotFoundError(f"{profiles_path} does not exist (run personas discord users)")
    document = orjson.loads(profiles_path.read_bytes())
    profiles = [Profile.model_validate(entry["profile"]) for entry in document.get("users", [])]
    data = read_data(input_dir)
    with progress_task("discord generate", len(profiles), "examples") as bar, gc_paused():
        result = run_generate(data, profiles, out, config, dataset_dir=dataset_dir, on_persona=bar.advance)
    counts = result.counts
    rows: dict[str, object] = {"examples": counts["examples"], "personas": counts["personas"]}
    rows.update({f"split {k}": v for k, v in counts["splits"].items()})
    rows["templates"] = ", ".join(f"{k} {v:,}" for k, v in counts["templates"].items())
    rows["dataset folder"] = str(result.dataset_dir)
    stdout.print(_table(f"discord generate -> {out}", rows))
    if repo_path is not None:
        _knowledge(repo_path, repo_cache, out)


def _knowledge(repo: str, cache: Path, out: Path) -> None:
    from pipeline.datasets.card import CardSpec
    from pipeline.datasets.writer import write_dataset
    from pipeline.discord.generate import write_jsonl
    from pipeline.discord.knowledge import SOURCE, knowledge_examples, load_summaries, resolve_repo
    from pipeline.discord.knowledge_schema import KNOWLEDGE_FIELDS, KNOWLEDGE_SCHEMA

    root = resolve_repo(repo, cache)
    items, report = load_summaries(root)
    rows = knowledge_examples(items)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    jsonl = out.with_name(f"{stem}.knowledge.jsonl")
    write_jsonl(jsonl, rows)
    folder = out.with_name(f"{stem}-knowledge-dataset")
    card = CardSpec(
        pretty_name="elizaOS Discord daily-summary pairs (low quality)",
        description=(
            "Question/answer and helper/helpee pairs parsed from the LLM-written daily summaries of the elizaOS "
            "Discord in the elizaos/knowledge repository. **Low quality**: names are display names an LLM wrote, "
            "the text is a paraphrase, not what anyone said. Kept apart from the real-message dataset on purpose."
        ),
        tags=["discord", "persona", "summaries", "low-quality"],
        fields=KNOWLEDGE_FIELDS,
        statistics={"files": report.files, **{f"{k} pairs": v for k, v in report.items.items()}},
        provenance=f"elizaos/knowledge `ai-news/elizaos/discord/json/` ({SOURCE}).",
    )
    write_dataset(folder, KNOWLEDGE_SCHEMA, {"train": rows} if rows else {}, card)
    stdout.print(
        _table(
            f"elizaos/knowledge (separate, low quality) -> {jsonl}",
            {
                "summary files": report.files,
                "files skipped": sum(report.skipped_files.values()),
                "qa pairs": report.items.get("qa", 0),
                "help pairs": report.items.get("help", 0),
                "dropped": ", ".join(f"{k} {v:,}" for k, v in report.dropped.items()) or "0",
                "dataset folder": str(folder),
            },
        )
    )
