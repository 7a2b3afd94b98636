"""Commands: bot init, timeline, run (the X persona bot; config in bot.toml, see README "X bot")."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.app import app, user_errors
from pipeline.progress import console, stdout

if TYPE_CHECKING:
    from pipeline.bot.config import BotConfig

bot_app = typer.Typer(help="The X persona bot: store, timeline, loops.", no_args_is_help=True)
app.add_typer(bot_app, name="bot")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="bot.toml (one [bot] or several [[bots]])")
]
BotOption = Annotated[
    str | None, typer.Option("--bot", help="which bot of the file (needed when it has several)")
]


def _bots(config: Path, name: str | None, *, all_when_unnamed: bool = False) -> list[BotConfig]:
    from pipeline.bot.config import load_bots, select_bot

    bots = load_bots(config)
    if name is None and all_when_unnamed:
        return bots
    return [select_bot(bots, name)]


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(2)


@bot_app.command("init")
@user_errors
def init(config: ConfigOption, bot: BotOption = None) -> None:
    """Create the database schema (every bot of the file unless --bot)."""
    from pipeline.bot.store import BotStore

    for cfg in _bots(config, bot, all_when_unnamed=True):
        store = BotStore(cfg.database_url)
        tables = store.init()
        store.close()
        stdout.print(
            f"{cfg.name}: schema ready ({', '.join(tables)}) at {store.engine.url.render_as_string()}"
        )


def _print_cycle(result: object, dry_run: bool, no_reply: bool) -> None:
    from pipeline.bot.timeline import CycleResult

    assert isinstance(result, CycleResult)
    mode = "no-reply" if no_reply else ("dry run" if dry_run else "live")
    answered = Table(title=f"answered ({len(result.answered)}, {mode})", title_justify="left")
    for column in ("post", "author", "decision", "outcome", "why", "draft"):
        answered.add_column(column, overflow="fold")
    for c in result.answered:
        answered.add_row(
            c.post.id,
            c.post.author_username or "?",
            c.decision,
            c.outcome or "-",
            escape(c.reason),
            escape(c.draft or ""),
        )
    ignored = Table(title=f"ignored ({len(result.ignored)})", title_justify="left")
    for column in ("post", "author", "why", "text"):
        ignored.add_column(column, overflow="fold")
    for c in result.ignored:
        ignored.add_row(c.post.id, c.post.author_username or "?", escape(c.reason), escape(c.post.text[:140]))
    stdout.print(answered)
    stdout.print(ignored)
    split = ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items())
    stdout.print(f"time: {split}")


def _cycle(cfg: BotConfig, *, no_reply: bool, dry_run: bool | None) -> None:
    from pipeline.bot.config import XCredentials
    from pipeline.bot.store import BotStore
    from pipeline.bot.timeline import run_timeline_cycle
    from pipeline.bot.x import XInteractor
    from pipeline.inference import ChatClient

    store = BotStore(cfg.database_url)
    store.init()
    try:
        x = XInteractor(cfg.x, XCredentials.from_env())
        with ChatClient(cfg.inference) as chat:
            result = run_timeline_cycle(cfg, store, x, chat, no_reply=no_reply, dry_run=dry_run)
        _print_cycle(result, cfg.dry_run if dry_run is None else dry_run, no_reply)
    finally:
        store.close()


@bot_app.command("timeline")
@user_errors
def timeline(
    config: ConfigOption,
    bot: BotOption = None,
    no_reply: Annotated[
        bool, typer.Option("--no-reply", help="post nothing: print verdicts and drafts")
    ] = False,
) -> None:
    """One timeline cycle: judge the unseen posts, answer (or draft), print what happened."""
    from pipeline.bot.x import XError

    try:
        _cycle(_bots(config, bot)[0], no_reply=no_reply, dry_run=True if no_reply else None)
    except XError as exc:
        raise _fail(exc) from None


def _engagement(cfg: BotConfig) -> None:
    from pipeline.bot.config import XCredentials
    from pipeline.bot.engagement import collect_comments, compute_rewards, snapshot_engagement
    from pipeline.bot.jumpstart import refresh_community
    from pipeline.bot.store import BotStore
    from pipeline.bot.x import XInteractor
    from pipeline.inference import ChatClient

    store = BotStore(cfg.database_url)
    store.init()
    try:
        x = XInteractor(cfg.x, XCredentials.from_env())
        snap = snapshot_engagement(cfg, store, x)
        comments = collect_comments(cfg, store, x)
        if cfg.inference.model:
            with ChatClient(cfg.inference) as chat:
                community = refresh_community(cfg, store, x, chat=chat)
        else:
            community = refresh_community(cfg, store, x)
        rewarded = compute_rewards(cfg, store, followers=x.me().followers)
        mean = sum(r.reward for r in rewarded) / len(rewarded) if rewarded else float("nan")
        stdout.print(
            f"engagement: {snap.snapshots}/{snap.posts} posts read in {snap.api_calls} API call(s); "
            f"{comments.new_comments} new replies/quotes ({comments.api_calls} call(s)); "
            f"{len(community)}/{len(cfg.follow)} followed profiles refreshed; "
            f"{len(rewarded)} rewarded, mean reward {mean:.3f}"
        )
    finally:
        store.close()


def _rl(cfg: BotConfig) -> None:
    from pipeline.bot.rl_loop import check_rollback, rl_round
    from pipeline.bot.store import BotStore
    from pipeline.inference import ChatClient

    store = BotStore(cfg.database_url)
    store.init()
    try:
        with ChatClient(cfg.inference) as chat:
            if check_rollback(cfg, store, chat):
                stdout.print("rl: rewards fell under the new adapter: previous adapter restored")
            result = rl_round(cfg, store, chat)
        stdout.print(
            f"rl: {result.reason}" + (f" ({result.rows} rows -> {result.adapter})" if result.ran else "")
        )
    finally:
        store.close()


@bot_app.command("run")
@user_errors
def run(
    config: ConfigOption,
    bot: BotOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="post nothing, whatever the config says")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="one round of each loop, then exit")] = False,
) -> None:
    """The loops on their intervals: timeline (judge, answer), engagement (snapshots, rewards), RL."""
    from pipeline.bot.x import RateLimited, XError
    from pipeline.inference import InferenceError

    cfg = _bots(config, bot)[0]
    loops: dict[str, tuple[Callable[[], None], float]] = {
        "timeline": (
            lambda: _cycle(cfg, no_reply=False, dry_run=True if dry_run else None),
            cfg.loops.timeline_interval_s,
        ),
        "engagement": (lambda: _engagement(cfg), cfg.loops.engagement_interval_s),
        "rl": (lambda: _rl(cfg), cfg.loops.rl_interval_s),
    }
    due = dict.fromkeys(loops, 0.0)
    while True:
        if cfg.safety.kill_switch.exists():
            console.print(f"[yellow]kill switch {cfg.safety.kill_switch} exists: stopping[/]")
            return
        for name, (step, interval) in loops.items():
            if due[name] > time.monotonic():
                continue
            wait = interval
            try:
                step()
            except (XError, InferenceError) as exc:
                if once:
                    raise _fail(exc) from None
                # a long-running bot outlives X's and the model server's bad moments: log, wait, go on
                if isinstance(exc, RateLimited) and exc.reset_at is not None:
                    wait = max(interval, exc.reset_at - time.time() + 1)
                outcome = getattr(exc, "outcome", "inference_error")
                console.print(f"[yellow]{name}: {outcome}: {escape(str(exc))}; next try in {wait:.0f} s[/]")
            due[name] = time.monotonic() + wait
        if once:
            return
        time.sleep(max(1.0, min(due.values()) - time.monotonic()))


@bot_app.command("export-rl")
@user_errors
def export_rl(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="JSONL file of (prompt, output, engagement, reward) rows")],
    bot: BotOption = None,
    all_rows: Annotated[bool, typer.Option("--all", help="also rows an RL round already used")] = False,
) -> None:
    """Write the rewarded posts as `personas train rl` rows."""
    from pipeline.bot.engagement import export_rl_rows
    from pipeline.bot.store import BotStore

    cfg = _bots(config, bot)[0]
    store = BotStore(cfg.database_url)
    try:
        n = export_rl_rows(cfg, store, out, untrained_only=not all_rows)
    finally:
        store.close()
    stdout.print(f"{n} row(s) -> {out}")


@bot_app.command("jumpstart")
@user_errors
def jumpstart(
    config: ConfigOption,
    bot: BotOption = None,
    download_only: Annotated[
        bool, typer.Option("--download-only", help="write the shards, skip SFT")
    ] = False,
) -> None:
    """Followed accounts' posts (round robin, to the token budget) as shards, then LoRA SFT."""
    from pipeline.bot.config import XCredentials
    from pipeline.bot.jumpstart import download, train_jumpstart
    from pipeline.bot.store import BotStore
    from pipeline.bot.x import XError, XInteractor

    cfg = _bots(config, bot)[0]
    if not cfg.follow:
        raise ValueError(f"bot {cfg.name} follows nobody: set `follow` in {config}")
    store = BotStore(cfg.database_url)
    store.init()
    out = cfg.model.checkpoint_dir / cfg.name / "jumpstart" / "shards"
    try:
        result = download(cfg, store, XInteractor(cfg.x, XCredentials.from_env()), out)
    except XError as exc:
        raise _fail(exc) from None
    finally:
        store.close()
    per = ", ".join(f"@{h} {n:,}" for h, n in result.per_account.items())
    stdout.print(
        f"jumpstart: {result.posts:,} posts, ~{result.tokens:,} tokens, {len(result.shards)} shard(s) in {out} "
        f"(stopped by {result.stopped_by}; {per})"
        + (f"; not found: {', '.join(result.missing)}" if result.missing else "")
    )
    if download_only or not result.shards:
        return
    adapter = train_jumpstart(cfg, result.shards)
    stdout.print(f"jumpstart adapter -> {adapter}")


@bot_app.command("distill-prompts")
@user_errors
def distill_prompts_command(
    config: ConfigOption,
    out: Annotated[Path, typer.Option(help="ChatML JSONL file for `personas train distill --prompts`")],
    student: Annotated[
        str, typer.Option(help="the student base model, for the printed command")
    ] = "<student>",
) -> None:
    """Hand-off to reverse distillation: every bot's answered prompts, and the command to run."""
    from pipeline.bot.config import load_bots
    from pipeline.bot.ecosystem import distill_prompts

    rows, teachers = distill_prompts(load_bots(config), out)
    stdout.print(f"{rows} prompt(s) from {len(teachers)} bot(s) -> {out}")
    stdout.print(
        f"personas train distill --teachers {','.join(teachers)} --student {student} --prompts {out}",
        soft_wrap=True,
    )
