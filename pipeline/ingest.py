"""Ingest: sources -> normalized snapshots -> the store, with progress, counted skips and periodic commits."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.cpu import default_workers
from pipeline.gcpause import gc_paused
from pipeline.progress import ingest_progress
from pipeline.sources.archive_json import load_archive_json
from pipeline.sources.base import AccountArchive, SourceError, SourceReport, UnchangedInput
from pipeline.sources.twitter_export import load_twitter_export
from pipeline.store import StagedArchive, Store, Transaction, stage_archive
from pipeline.store.manifest import IngestRun

log = logging.getLogger("pipeline.ingest")

LOADERS: dict[str, Callable[[Path, frozenset[str]], AccountArchive]] = {
    "archive": load_archive_json,
    "twitter-export": load_twitter_export,
}


@dataclass
class IngestResult:
    source: str
    inputs: int = 0
    accounts: set[int] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    report: SourceReport | None = None
    seconds: float = 0.0

    @property
    def tweets(self) -> int:
        return self.report.counts.get("tweets", 0) if self.report else 0


@dataclass
class Failed:
    origin: str
    reason: str


@dataclass
class Unchanged:
    origin: str


Outcome = StagedArchive | Failed | Unchanged


def _load_and_stage(kind: str, path: str, staging_root: str, known: frozenset[str]) -> Outcome:
    """Worker: parse and normalize one input, write it to staging (or say why not)."""
    try:
        with gc_paused():
            archive = LOADERS[kind](Path(path), known)
        return stage_archive(archive, Path(staging_root))
    except UnchangedInput as exc:
        return Unchanged(exc.origin)
    except SourceError as exc:
        return Failed(exc.origin, exc.reason)
    except MemoryError:
        return Failed(path, "out of memory while parsing")


class _Committer:
    """Applies staged snapshots to a transaction and commits at least every `every_s` seconds."""

    def __init__(self, txn: Transaction, result: IngestResult, every_s: float):
        self.txn = txn
        self.result = result
        self.every_s = every_s
        self.last = time.monotonic()
        self.report = SourceReport(origin="(run)", source=result.source)
        self.pending_reports: list[SourceReport] = []

    def apply(self, staged: StagedArchive) -> None:
        self.txn.apply(staged)
        self.result.accounts.add(staged.account_id)
        self.pending_reports.append(staged.report)
        if time.monotonic() - self.last >= self.every_s:
            self.commit()

    def fail(self, origin: str, reason: str) -> None:
        self.result.failed[origin] = reason
        log.error("skipped %s: %s", origin, reason)

    def unchanged(self, origin: str) -> None:
        self.result.unchanged.append(origin)
        log.debug("unchanged since last ingested: %s", origin)

    def commit(self) -> None:
        # Conflict resolution at commit may add skips to the pending reports, so fold them in after.
        self.txn.commit()
        for report in self.pending_reports:
            self.report.merge(report)
        self.pending_reports.clear()
        self.last = time.monotonic()


def _run(store: Store, source: str, body: Callable[[_Committer], int], commit_every_s: float) -> IngestResult:
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    result = IngestResult(source=source)
    with store.transaction() as txn:
        committer = _Committer(txn, result, commit_every_s)
        try:
            result.inputs = body(committer)
        finally:
            # Whatever was applied is complete and consistent: keep it even when interrupted.
            committer.commit()
            result.report = committer.report
            result.seconds = time.perf_counter() - clock
            txn.record_run(
                IngestRun(
                    started_at=started,
                    finished_at=dt.datetime.now(dt.UTC),
                    source=source,
                    inputs=result.inputs,
                    accounts=len(result.accounts),
                    unchanged_inputs=len(result.unchanged),
                    failed_inputs=dict(result.failed),
                    report=committer.report,
                )
            )
            txn.commit()
    return result


def ingest_files(
    store: Store,
    paths: list[Path],
    *,
    kind: str,
    workers: int = 0,
    commit_every_s: float = 30.0,
    show_progress: bool = True,
    force: bool = False,
) -> IngestResult:
    """Ingest archive.json files (kind="archive") or X exports (kind="twitter-export").

    An input whose bytes were ingested before is skipped unread (unless `force`).
    """
    if kind not in LOADERS:
        raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(LOADERS)}")
    n_workers = default_workers(workers, len(paths))

    def body(committer: _Committer) -> int:
        staging = str(committer.txn.staging_root)
        known = frozenset() if force else committer.txn.manifest.known_digests()
        with ingest_progress(len(paths), show=show_progress) as progress:
            for outcome in _staged(kind, paths, staging, n_workers, known):
                if isinstance(outcome, StagedArchive):
                    committer.apply(outcome)
                    progress.advance(outcome.report.counts.get("tweets", 0))
                elif isinstance(outcome, Failed):
                    committer.fail(outcome.origin, outcome.reason)
                    progress.advance(0)
                else:
                    committer.unchanged(outcome.origin)
                    progress.advance(0)
        return len(paths)

    return _run(store, kind, body, commit_every_s)


def _staged(
    kind: str, paths: list[Path], staging: str, workers: int, known: frozenset[str]
) -> Iterator[Outcome]:
    if workers <= 1:
        for path in paths:
            yield _load_and_stage(kind, str(path), staging, known)
        return
    # Spawn, not fork: the parent may hold DuckDB threads by the time workers start.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # Keep a bounded number in flight so that finished results stream back in order of completion.
        queue = list(reversed(paths))
        running: set[Future[Outcome]] = set()
        try:
            while queue or running:
                while queue and len(running) < workers * 2:
                    running.add(pool.submit(_load_and_stage, kind, str(queue.pop()), staging, known))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in running:
                future.cancel()
            raise


def ingest_archives(
    store: Store,
    archives: Iterable[AccountArchive | SourceError | UnchangedInput],
    *,
    source: str,
    total: int | None = None,
    commit_every_s: float = 30.0,
    show_progress: bool = True,
) -> IngestResult:
    """Ingest already-normalized archives (the REST source produces these as it downloads)."""

    def body(committer: _Committer) -> int:
        count = 0
        with ingest_progress(total, show=show_progress) as progress:
            for item in archives:
                count += 1
                if isinstance(item, SourceError):
                    committer.fail(item.origin, item.reason)
                    progress.advance(0)
                    continue
                if isinstance(item, UnchangedInput):
                    committer.unchanged(item.origin)
                    progress.advance(0)
                    continue
                committer.apply(stage_archive(item, committer.txn.staging_root))
                progress.advance(item.report.counts.get("tweets", 0))
        return count

    return _run(store, source, body, commit_every_s)
