"""Commands: build, report, publish (datasets from the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipeline.cli.app import app, state, user_errors
from pipeline.config import DatasetsConfig, Settings
from pipeline.datasets.build import BuildReport
from pipeline.datasets.render import NoReferences, References
from pipeline.progress import stdout


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def references_for(settings: Settings) -> tuple[References, dict[str, object] | None]:
    """Hydrated article text when hydration has run (`personas hydrate`), else the placeholder."""
    from pipeline.hydrate import HydratedReferences, hydration_stats

    stats = hydration_stats(settings.hydrate.dir)
    if not stats.ran:
        return NoReferences(), None
    return HydratedReferences(settings.hydrate.dir, settings.datasets.ref_max_words), stats.as_dict()


@app.command()
@user_errors
def build(
    only: Annotated[
        str | None,
        typer.Option(
            help="comma list: tweets, chatml (all three), chatml-two-party, "
            "chatml-multi-party, chatml-persona, prefs"
        ),
    ] = None,
    persona: Annotated[str | None, typer.Option(help="comma list of handles for chatml-persona")] = None,
    gold: Annotated[str | None, typer.Option(help="comma list of gold accounts for preference pairs")] = None,
    out: Annotated[
        Path | None, typer.Option(help="where the dataset folders go (default from config)")
    ] = None,
    split_mode: Annotated[
        str | None, typer.Option(help="hash (by conversation) or time (newest trees in test)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed for splits and pair sampling")] = None,
) -> None:
    """Every dataset from the store: ChatML (two-party, multi-party, persona), preference pairs, scored tweets."""
    from pipeline.datasets.build import build as run_build

    settings = state.settings()
    config = settings.datasets.model_copy(deep=True)
    if out is not None:
        config.out = out
    if persona is not None:
        config.personas = _csv(persona)
    if gold is not None:
        config.pairs.gold_accounts = _csv(gold)
    if split_mode is not None:
        if split_mode not in ("hash", "time"):
            raise ValueError("--split-mode must be hash or time")
        config.split_mode = split_mode
    if seed is not None:
        config.seed = seed
        config.pairs.seed = seed
    references, reference_stats = references_for(settings)
    report = run_build(
        state.store(),
        config,
        only=_csv(only) or None,
        references=references,
        reference_stats=reference_stats,
    )
    print_build(report, config)


def print_build(report: BuildReport, config: DatasetsConfig) -> None:
    table = Table(
        title=f"datasets in {config.out} ({report.seconds:.1f} s, {report.tweets:,} tweets, "
        f"{report.trees:,} trees)",
        title_justify="left",
    )
    table.add_column("dataset")
    splits = sorted(
        {s for d in report.datasets.values() for s in d.splits},
        key=lambda s: ("train", "dev", "test").index(s) if s in ("train", "dev", "test") else 9,
    )
    for split in splits:
        table.add_column(split, justify="right")
    table.add_column("details")
    for name, stats in report.datasets.items():
        details = ", ".join(
            f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v:,}"
            for k, v in stats.stats.items()
            if k not in ("examples", "pairs")
        )
        table.add_row(name, *(f"{stats.splits.get(s, 0):,}" for s in splits), details)
    stdout.print(table)
    if report.skipped:
        stdout.print(
            "skipped or repaired: " + "; ".join(f"{k}: {v:,}" for k, v in sorted(report.skipped.items()))
        )
    stdout.print(f"statistics: {config.out / 'build-stats.json'}; plots: personas report")


@app.command()
@user_errors
def report(
    datasets: Annotated[
        Path | None, typer.Option(help="the folder `personas build` wrote (default from config)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default <datasets>/report.html)")
    ] = None,
) -> None:
    """An HTML report with plots of the last build."""
    from pipeline.datasets.report import write_report

    folder = datasets or state.settings().datasets.out
    path = write_report(folder, out)
    stdout.print(f"wrote {path}")


@app.command()
@user_errors
def publish(
    repo: Annotated[str, typer.Option(help="Hub dataset repo, org/name (suffixed -<dataset> when several)")],
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset", "-d", help="dataset folder(s) to push, e.g. chatml-multi-party, prefs, tweets"
        ),
    ] = None,
    private: Annotated[bool, typer.Option(help="create the repo private")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="check and list what would be uploaded; no token, no network")
    ] = False,
    datasets: Annotated[
        Path | None, typer.Option(help="the folder `personas build` wrote (default from config)")
    ] = None,
) -> None:
    """Push datasets to the Hugging Face Hub (token from HF_TOKEN, never printed)."""
    from pipeline.datasets.publish import PublishError, plan
    from pipeline.datasets.publish import publish as push

    folder = datasets or state.settings().datasets.out
    try:
        items = plan(folder, list(dataset or []), repo)
    except PublishError as exc:
        raise ValueError(str(exc)) from exc
    table = Table(title="dry run: would upload" if dry_run else "uploading", title_justify="left")
    for column in ("dataset", "repo", "files", "bytes", "examples"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item.dataset,
            f"{item.repo_id} ({'private' if private else 'public'})",
            str(len(item.files)),
            f"{sum(size for _, size in item.files):,}",
            ", ".join(f"{k} {v:,}" for k, v in item.examples.items()),
        )
    stdout.print(table)
    if dry_run:
        for item in items:
            for path, size in item.files:
                stdout.print(f"  {item.repo_id}/{path}  {size:,} B")
        return
    try:
        urls = push(items, private=private)
    except PublishError as exc:
        raise ValueError(str(exc)) from exc
    for url in urls:
        stdout.print(f"committed: {url}")
