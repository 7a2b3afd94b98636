"""Commands: ingest (archive, twitter-export, community-archive), synth, stats, sql, demo."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from huggingface_hub.errors import HfHubHTTPError as HubError
from rich.table import Table

from pipeline.config import ConfigError, Settings, load_settings
from pipeline.inference import InferenceError
from pipeline.ingest import IngestResult, ingest_archives, ingest_files
from pipeline.progress import console, progress_task, setup_logging, stdout
from pipeline.serving import ServeError
from pipeline.sources.archive_json import discover_files
from pipeline.sources.base import SourceError
from pipeline.sources.twitter_export import discover_exports
from pipeline.stats import StoreStats, store_stats
from pipeline.store import Store, StoreBusyError, StoreError

log = logging.getLogger("pipeline.cli")

app = typer.Typer(
    help="Turn conversation archives into persona datasets, models and agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(help="Add tweets to the canonical store from a source.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


class State:
    config_path: Path | None = None
    store_dir: Path | None = None

    def settings(self) -> Settings:
        settings = load_settings(self.config_path)
        if self.store_dir is not None:
            settings.store.dir = self.store_dir
        return settings

    def store(self) -> Store:
        settings = self.settings()
        return Store(settings.store.dir, gc_grace_s=settings.store.gc_grace_s)


state = State()
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Expected failures end with a one-line message and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (
            ConfigError,
            SourceError,
            StoreError,
            StoreBusyError,
            FileNotFoundError,
            ValueError,
            HubError,
            InferenceError,
            ServeError,
        ) as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; what was committed stays in the store[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config file (default ./personas.toml)")
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="store directory (overrides config)")] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="more logging (-vv for HTTP)")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="warnings and errors only")] = False,
) -> None:
    setup_logging(-1 if quiet else verbose)
    state.config_path = config
    state.store_dir = store


# -- ingest ----------------------------------------------------------------------------------------


def _print_ingest(result: IngestResult) -> None:
    report = result.report
    counts = report.counts if report else {}
    table = Table(title=f"ingest ({result.source})", show_header=False, title_justify="left")
    table.add_row("inputs", f"{result.inputs:,}")
    if result.unchanged:
        table.add_row("unchanged (skipped)", f"{len(result.unchanged):,}")
    table.add_row("accounts", f"{len(result.accounts):,}")
    for key in (
        "tweets",
        "replies",
        "quotes",
        "retweets",
        "notes_merged",
        "notes_unmatched",
        "edits_superseded",
        "community",
        "media",
        "urls",
        "likes",
        "followers",
        "following",
    ):
        if counts.get(key):
            table.add_row(key.replace("_", " "), f"{counts[key]:,}")
    seconds = max(result.seconds, 1e-9)
    table.add_row("time", f"{result.seconds:.1f} s ({result.tweets / seconds:,.0f} tweets/s)")
    stdout.print(table)
    if report and (report.skipped or report.coerced):
        problems = Table(title="skipped and repaired (counted, see log for examples)", title_justify="left")
        problems.add_column("what")
        problems.add_column("count", justify="right")
        for reason, n in sorted(report.skipped.items(), key=lambda kv: -kv[1]):
            problems.add_row(f"skipped: {reason}", f"{n:,}")
        for field_name, n in sorted(report.coerced.items(), key=lambda kv: -kv[1]):
            problems.add_row(f"unusable value, stored as null: {field_name}", f"{n:,}")
        stdout.print(problems)
    if result.failed:
        failed = Table(title=f"{len(result.failed)} input(s) not ingested", title_justify="left")
        failed.add_column("input")
        failed.add_column("reason")
        for origin, reason in result.failed.items():
            failed.add_row(origin, reason)
        stdout.print(failed)


def _finish(result: IngestResult) -> None:
    _print_ingest(result)
    if result.failed:
        raise typer.Exit(1)


def _ingest_inputs(inputs: list[Path], kind: str, workers: int, force: bool) -> None:
    settings = state.settings()
    result = ingest_files(
        state.store(),
        inputs,
        kind=kind,
        workers=settings.ingest.workers if workers < 0 else workers,
        commit_every_s=settings.ingest.commit_every_s,
        force=force,
    )
    _finish(result)


@ingest_app.command("archive")
@user_errors
def ingest_archive(
    paths: Annotated[list[Path], typer.Argument(help="archive.json files, or folders of them")],
    workers: Annotated[int, typer.Option(help="parallel workers (0 = one per core)")] = -1,
    force: Annotated[
        bool, typer.Option(help="re-ingest inputs even when their bytes were ingested before")
    ] = False,
) -> None:
    """Community Archive archive.json files."""
    files = discover_files(paths)
    if not files:
        raise ValueError("no archive files found in the given paths")
    _ingest_inputs(files, "archive", workers, force)


@ingest_app.command("twitter-export")
@user_errors
def ingest_twitter_export(
    paths: Annotated[list[Path], typer.Argument(help="export zips or unzipped folders (with data/*.js)")],
    workers: Annotated[int, typer.Option(help="parallel workers (0 = one per core)")] = -1,
    force: Annotated[
        bool, typer.Option(help="re-ingest inputs even when their bytes were ingested before")
    ] = False,
) -> None:
    """The official X/Twitter export (zip or folder)."""
    _ingest_inputs(discover_exports(paths), "twitter-export", workers, force)


@ingest_app.command("community-archive")
@user_errors
def ingest_community_archive(
    users: Annotated[str | None, typer.Option(help="comma-separated usernames to fetch")] = None,
    poll: Annotated[
        bool, typer.Option(help="fetch accounts whose latest upload is newer than the store's")
    ] = False,
    all_accounts: Annotated[
        bool, typer.Option("--all", help="with --poll: every account in the archive")
    ] = False,
    raw_dir: Annotated[Path | None, typer.Option(help="where raw downloads go (default from config)")] = None,
) -> None:
    """The Community Archive REST API (public, consent-filtered)."""
    from pipeline.sources import community_archive as ca

    settings = state.settings()
    names = [u.strip().lstrip("@") for u in (users or "").split(",") if u.strip()]
    if not names and not poll:
        raise ValueError("give --users name1,name2 or --poll")
    store = state.store()
    with ca.CommunityArchiveClient(settings.community_archive) as client:
        try:
            manifest = store.read_manifest()
            if poll:
                plan = ca.plan_poll(client, manifest.uploads_held(), usernames=names, everything=all_accounts)
            else:
                plan = ca.plan_users(client, names)
        except ca.FetchError as exc:
            raise SourceError(settings.community_archive.url, str(exc)) from exc
        for name in plan.not_found:
            stdout.print(f"[yellow]not in the Community Archive:[/] {name}")
        if plan.up_to_date:
            stdout.print(f"{len(plan.up_to_date)} account(s) already up to date")
        if not plan.targets:
            stdout.print("nothing to fetch")
            if plan.not_found:
                raise typer.Exit(1)
            return
        archives = ca.download_accounts(
            client, plan, raw_dir or settings.community_archive.raw_dir, known=manifest.known_digests()
        )
        result = ingest_archives(
            store,
            archives,
            source=ca.SOURCE,
            total=len(plan.targets),
            commit_every_s=settings.ingest.commit_every_s,
        )
        log.info("%d requests, %d retries", client.requests, client.retries)
    _finish(result)
    if plan.not_found:
        raise typer.Exit(1)


# -- synth -----------------------------------------------------------------------------------------


@app.command()
@user_errors
def synth(
    accounts: Annotated[int | None, typer.Option(help="number of accounts")] = None,
    tweets: Annotated[int | None, typer.Option(help="number of tweets in all")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same bytes)")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    start: Annotated[str, typer.Option(help="first date, YYYY-MM-DD")] = "2019-01-01",
    end: Annotated[str, typer.Option(help="last date, YYYY-MM-DD")] = "2024-11-01",
    workers: Annotated[int, typer.Option(help="parallel writers (0 = one per core)")] = 0,
) -> None:
    """Write a synthetic corpus of archive.json files."""
    from pipeline.cpu import default_workers
    from pipeline.synth.generator import SynthSpec, generate_corpus

    defaults = state.settings().synth
    spec = SynthSpec(
        accounts=accounts if accounts is not None else defaults.accounts,
        tweets=tweets if tweets is not None else defaults.tweets,
        seed=seed if seed is not None else defaults.seed,
        start=dt.date.fromisoformat(start),
        end=dt.date.fromisoformat(end),
    )
    spec.validate()
    out_dir = out or defaults.out
    with progress_task("synth", spec.accounts, "tweets") as bar:
        summary = generate_corpus(
            spec,
            out_dir,
            workers=default_workers(workers, spec.accounts),
            on_account=lambda n: bar.advance(n),
        )
    stdout.print(
        f"wrote {len(summary.files)} archives, {summary.tweets:,} tweets, {summary.bytes / 1e6:,.1f} MB "
        f"to {out_dir} in {summary.seconds:.1f} s ({summary.tweets / max(summary.seconds, 1e-9):,.0f} tweets/s)"
    )
    kinds = ", ".join(f"{k} {v:,}" for k, v in summary.kinds.items())
    stdout.print(
        f"kinds: {kinds}; notes {summary.notes:,}; media {summary.media:,}; community {summary.community:,}"
    )


# -- stats and sql ---------------------------------------------------------------------------------


def _fmt_time(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def render_stats(stats: StoreStats) -> None:
    overview = Table(title="store", show_header=False, title_justify="left")
    overview.add_row("accounts", f"{stats.accounts:,}")
    overview.add_row("tweets", f"{stats.tweets:,} ({stats.live_tweets:,} live, {stats.deleted:,} deleted)")
    overview.add_row("date range", f"{_fmt_time(stats.first)} .. {_fmt_time(stats.last)}")
    overview.add_row(
        "replies",
        f"{stats.replies:,} (parent in store {stats.replies_parent_in_store:,}, "
        f"missing {stats.replies - stats.replies_parent_in_store:,}; self-replies {stats.self_replies:,})",
    )
    overview.add_row("quotes", f"{stats.quotes:,} (quoted tweet in store {stats.quotes_target_in_store:,})")
    overview.add_row("retweets", f"{stats.retweets:,}")
    overview.add_row("notes (long posts)", f"{stats.notes:,}")
    overview.add_row("community tweets", f"{stats.community:,}")
    overview.add_row("edited tweets", f"{stats.edited:,}")
    overview.add_row("urls / media / mentions", f"{stats.urls:,} / {stats.media:,} / {stats.mentions:,}")
    overview.add_row(
        "likes / followers / following", f"{stats.likes:,} / {stats.followers:,} / {stats.following:,}"
    )
    stdout.print(overview)

    sources = Table(title="tweets per source", title_justify="left")
    sources.add_column("source")
    sources.add_column("tweets", justify="right")
    for source, n in stats.per_source.items():
        sources.add_row(source, f"{n:,}")
    stdout.print(sources)

    accounts = Table(title=f"top {len(stats.per_account)} accounts by tweets", title_justify="left")
    for column in (
        "account",
        "tweets",
        "replies",
        "quotes",
        "RTs",
        "notes",
        "deleted",
        "first",
        "last",
        "sources",
    ):
        accounts.add_column(column, justify="left" if column in ("account", "sources") else "right")
    for a in stats.per_account:
        accounts.add_row(
            f"@{a.username}",
            f"{a.tweets:,}",
            f"{a.replies:,}",
            f"{a.quotes:,}",
            f"{a.retweets:,}",
            f"{a.notes:,}",
            f"{a.deleted:,}",
            _fmt_time(a.first),
            _fmt_time(a.last),
            a.sources,
        )
    stdout.print(accounts)

    if stats.recent_ingests:
        runs = Table(title="recent ingests", title_justify="left")
        for column in ("finished", "source", "inputs", "accounts", "tweets", "failed", "skipped"):
            runs.add_column(column)
        for run in stats.recent_ingests:
            runs.add_row(
                run.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
                run.source,
                str(run.inputs),
                str(run.accounts),
                f"{run.report.counts.get('tweets', 0):,}",
                str(len(run.failed_inputs)),
                f"{sum(run.report.skipped.values()):,}",
            )
        stdout.print(runs)


@app.command()
@user_errors
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    top: Annotated[int, typer.Option(help="accounts listed")] = 20,
) -> None:
    """What is in the store: counts per source, per account, date range, reply/quote/retweet/note counts."""
    store = state.store()
    if not store.exists():
        raise StoreError(f"no store at {store.root}; ingest something first (personas ingest --help)")
    result = store_stats(store, top=top)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        render_stats(result)


@app.command()
@user_errors
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL over the views tweets, urls, media, mentions, quotes, edits, "
            "likes, followers, following, accounts, profiles, users"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per row")] = False,
    limit: Annotated[int, typer.Option(help="rows shown")] = 50,
) -> None:
    """Query the store with DuckDB."""
    import duckdb

    con = state.store().connect()
    try:
        try:
            relation = con.sql(query)
        except duckdb.Error as exc:
            raise ValueError(f"query failed: {exc}") from exc
        if relation is None:
            return
        columns = relation.columns
        rows = relation.limit(limit).fetchall()
    finally:
        con.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str, ensure_ascii=False))
        return
    table = Table()
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(table)


# -- demo ------------------------------------------------------------------------------------------


@app.command()
@user_errors
def demo(
    accounts: Annotated[int, typer.Option(help="accounts in the generated corpus")] = 60,
    tweets: Annotated[int, typer.Option(help="tweets in the generated corpus")] = 30_000,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[Path, typer.Option(help="where the corpus, store and datasets go")] = Path("out/demo"),
) -> None:
    """The whole pipeline on a generated corpus: synth -> ingest -> build -> report (no network needed)."""
    from pipeline.cli.datasets import print_build
    from pipeline.datasets.build import build
    from pipeline.datasets.report import write_report
    from pipeline.synth.generator import SynthSpec, generate_corpus

    corpus = out / "corpus"
    spec = SynthSpec(accounts=accounts, tweets=tweets, seed=seed)
    with progress_task("synth", accounts, "tweets") as bar:
        summary = generate_corpus(spec, corpus, workers=2, on_account=lambda n: bar.advance(n))
    stdout.print(f"corpus: {len(summary.files)} archives, {summary.tweets:,} tweets in {corpus}")
    store = Store(out / "store", gc_grace_s=0)
    result = ingest_files(store, summary.files, kind="archive")
    _print_ingest(result)
    stats = store_stats(store, top=5)
    render_stats(stats)
    if result.failed:
        raise typer.Exit(1)
    # The most active account plays the persona; the next three are the gold accounts of the pairs.
    top = [a.username for a in stats.per_account]
    config = state.settings().datasets.model_copy(deep=True)
    config.out = out / "datasets"
    config.personas = top[:1]
    config.pairs.gold_accounts = top[1:4]
    report = build(store, config)
    print_build(report, config)
    page = write_report(config.out)
    stdout.print(
        f"store: {store.root}\ndatasets: {config.out}  (persona {top[0]}, gold {', '.join(top[1:4])})"
    )
    stdout.print(f"report: {page}")
    stdout.print(
        f"next: personas --store {store.root} sql 'SELECT username, count(*) FROM tweets GROUP BY 1'"
    )
