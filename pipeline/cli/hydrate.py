"""Commands: hydrate urls, hydrate images, hydrate stats (linked articles and tweet images)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.app import app, state, user_errors
from pipeline.config import HydrateConfig
from pipeline.progress import progress_task, stdout
from pipeline.store import Store, StoreError

hydrate_app = typer.Typer(
    help="Fetch linked articles and tweet images (safely: public addresses only, capped).",
    no_args_is_help=True,
)
app.add_typer(hydrate_app, name="hydrate")

ConcurrencyOption = Annotated[
    int | None, typer.Option(help="requests in flight (default from config, 16)", min=1, max=1024)
]
LimitOption = Annotated[
    int | None, typer.Option(help="fetch at most this many new items (the rest on the next run)", min=0)
]
RetryOption = Annotated[bool, typer.Option(help="fetch again what failed before")]


def _config(concurrency: int | None) -> HydrateConfig:
    config = state.settings().hydrate.model_copy(deep=True)
    if concurrency is not None:
        config.concurrency = concurrency
    return config


def _existing_store() -> Store:
    store = state.store()
    if not store.exists():
        raise StoreError(f"no store at {store.root}; ingest something first (personas ingest --help)")
    return store


def _failures(title: str, failures: Counter[str], note: str) -> None:
    if not failures:
        return
    table = Table(title=title, caption=note, title_justify="left", caption_justify="left")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for reason, n in failures.most_common():
        table.add_row(reason, f"{n:,}")
    stdout.print(table)


@hydrate_app.command("urls")
@user_errors
def hydrate_urls(
    concurrency: ConcurrencyOption = None,
    limit: LimitOption = None,
    retry_failed: RetryOption = False,
) -> None:
    """Fetch every external link of the store once and cache its main text (re-runs resume)."""
    from pipeline.hydrate.articles import hydrate_urls as run_urls
    from pipeline.hydrate.articles import linked_urls

    config = _config(concurrency)
    urls = linked_urls(_existing_store())
    with progress_task("articles", None, "urls") as bar:
        run = run_urls(
            urls,
            config,
            limit=limit,
            retry_failed=retry_failed,
            on_planned=bar.set_total,
            on_done=lambda record: bar.advance(1),
        )
    table = Table(
        title=f"linked articles ({config.dir / 'articles'})", show_header=False, title_justify="left"
    )
    table.add_row("distinct URLs in the store", f"{run.distinct:,}")
    table.add_row("already cached (not fetched)", f"{run.cached:,}")
    for reason, n in sorted(run.skipped.items()):
        table.add_row(f"not fetched: {reason}", f"{n:,}")
    rate = run.ok / run.fetched if run.fetched else 0.0
    table.add_row("fetched now", f"{run.fetched:,} ({run.ok:,} extracted, {rate:.1%})")
    table.add_row("words / bytes", f"{run.words:,} / {run.bytes:,}")
    if run.remaining:
        table.add_row("left for the next run (--limit)", f"{run.remaining:,}")
    table.add_row("time", f"{run.seconds:.1f} s ({run.fetched / max(run.seconds, 1e-9):,.1f} URLs/s)")
    stdout.print(table)
    _failures("failed URLs", run.failures, "recorded; --retry-failed tries them again")


@hydrate_app.command("images")
@user_errors
def hydrate_images(
    concurrency: ConcurrencyOption = None,
    limit: LimitOption = None,
    retry_failed: RetryOption = False,
) -> None:
    """Download tweet media to {tweet_id}_{image_index}.{ext} with a metadata table (re-runs resume)."""
    from pipeline.hydrate.images import hydrate_images as run_images
    from pipeline.hydrate.images import images_folder, media_items

    config = _config(concurrency)
    items = media_items(_existing_store())
    with progress_task("images", None, "images") as bar:
        run = run_images(
            items,
            config,
            limit=limit,
            retry_failed=retry_failed,
            on_planned=bar.set_total,
            on_done=lambda record: bar.advance(1),
        )
    folder = images_folder(config.dir)
    table = Table(title=f"images ({folder})", show_header=False, title_justify="left")
    table.add_row("media items in the store", f"{run.items:,}")
    table.add_row("already done (not fetched)", f"{run.cached:,}")
    rate = run.ok / run.fetched if run.fetched else 0.0
    table.add_row("fetched now", f"{run.fetched:,} ({run.ok:,} saved, {rate:.1%})")
    table.add_row("bytes saved", f"{run.bytes:,}")
    if run.remaining:
        table.add_row("left for the next run (--limit)", f"{run.remaining:,}")
    table.add_row("time", f"{run.seconds:.1f} s ({run.fetched / max(run.seconds, 1e-9):,.1f} images/s)")
    table.add_row("metadata", str(folder / "metadata.parquet"))
    stdout.print(table)
    _failures("failed images", run.failures, "recorded; the tweets keep their text")


@hydrate_app.command("stats")
@user_errors
def hydrate_stats(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Success rates, bytes and failure reasons of everything hydrated so far."""
    from pipeline.hydrate.stats import hydration_stats

    stats = hydration_stats(state.settings().hydrate.dir)
    if as_json:
        typer.echo(stats.model_dump_json(indent=2))
        return
    table = Table(title="hydration", show_header=False, title_justify="left")
    for key, value in stats.as_dict().items():
        table.add_row(key.replace("_", " "), f"{value:.1%}" if key.endswith("rate") else f"{value:,}")
    stdout.print(table)
