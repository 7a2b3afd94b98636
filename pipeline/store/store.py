"""The canonical store: Parquet tables per account, a manifest, and DuckDB views over them.

Layout under the store root:

    manifest.json                         which version directory is current for each account
    accounts/<account_id>/<version>/      one immutable directory per account version:
        tweets.parquet urls.parquet ...   one file per non-empty table (see pipeline.records.TABLES)
    staging/<txn>/                        snapshots being written by ingest workers
    .lock                                 one writer at a time

Invariants: a tweet id appears in at most one account's tweets (an incoming row that
claims an id another account already holds is skipped and counted); every file the
manifest names is complete and fsynced before the manifest names it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel

from pipeline.records import SCHEMAS, SECTION_TABLES, TABLES, parquet_options
from pipeline.sources.base import AccountArchive, Snapshot, SourceReport
from pipeline.store.atomic import atomic_write_bytes, exclusive_lock, fsync_path, sync_dirs
from pipeline.store.manifest import (
    HISTORY_KEPT,
    MANIFEST_FORMAT,
    AccountEntry,
    Garbage,
    IngestRun,
    Manifest,
)
from pipeline.store.merge import VersionSide, merge_connection, merge_versions, sql_path

log = logging.getLogger("pipeline.store")

CONFLICT_REASON = "tweet id already stored under another account"


class StoreError(RuntimeError):
    pass


class StagedArchive(BaseModel):
    """An AccountArchive written to a staging directory (what ingest workers hand back)."""

    account_id: int
    username: str
    snapshot: Snapshot
    directory: str
    rows: dict[str, int]
    sections: list[str]
    report: SourceReport


def write_table(table: pa.Table, path: Path) -> None:
    """Write one table file, durably: the manifest may name it as soon as the next commit."""
    pq.write_table(table, path, **parquet_options(table.schema))
    fsync_path(path)


def stage_archive(archive: AccountArchive, staging_root: Path) -> StagedArchive:
    """Write an archive's tables into a fresh directory under `staging_root`."""
    directory = staging_root / uuid.uuid4().hex
    directory.mkdir(parents=True)
    rows: dict[str, int] = {}
    for name, table in archive.tables.items():
        rows[name] = table.num_rows
        if table.num_rows:
            write_table(table, directory / f"{name}.parquet")
    return StagedArchive(
        account_id=archive.account_id,
        username=archive.username,
        snapshot=archive.snapshot,
        directory=str(directory),
        rows=rows,
        sections=[s for s in SECTION_TABLES if s in archive.tables],
        report=archive.report,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """A store rooted at a directory. Reading needs no lock; writing goes through `transaction()`."""

    def __init__(self, root: Path | str, *, gc_grace_s: float = 600.0):
        self.root = Path(root)
        self.gc_grace_s = gc_grace_s

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> Manifest:
        if not self.manifest_path.exists():
            return Manifest()
        try:
            manifest = Manifest.model_validate_json(self.manifest_path.read_bytes())
        except ValueError as exc:
            raise StoreError(f"{self.manifest_path} is unreadable ({exc}); the store needs repair") from exc
        if manifest.format != MANIFEST_FORMAT:
            raise StoreError(
                f"{self.manifest_path}: store format {manifest.format}, expected {MANIFEST_FORMAT}"
            )
        return manifest

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / ".lock"):
            txn = Transaction(self)
            try:
                yield txn
            finally:
                txn.close()

    # -- reading -------------------------------------------------------------------------------

    def files(self, table: str, manifest: Manifest | None = None) -> list[Path]:
        manifest = manifest or self.read_manifest()
        return [
            self.root / entry.path / f"{table}.parquet"
            for entry in manifest.accounts.values()
            if entry.rows.get(table)
        ]

    def connect(self, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per store table, plus `quotes` and `users`."""
        manifest = self.read_manifest()
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")  # we draw our own; DuckDB's would garble them
        if threads:
            con.execute(f"SET threads TO {int(threads)}")
        for name, schema in SCHEMAS.items():
            files = self.files(name, manifest)
            if files:
                listing = ", ".join(sql_path(f) for f in files)
                con.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listing}], union_by_name = true)"
                )
            else:
                con.register(f"_empty_{name}", schema.empty_table())
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")
        con.execute(
            """CREATE VIEW quotes AS
            SELECT tweet_id, account_id, quoted_tweet_id, quoted_username FROM tweets
            WHERE quoted_tweet_id IS NOT NULL"""
        )
        con.execute(
            """CREATE VIEW users AS
            SELECT user_id, arg_max(screen_name, priority) AS screen_name, arg_max(name, priority) AS name
            FROM (
                SELECT account_id AS user_id, username AS screen_name, display_name AS name, 2 AS priority FROM accounts
                UNION ALL
                SELECT user_id, screen_name, name, 1 FROM mentions WHERE user_id IS NOT NULL
            ) GROUP BY user_id"""
        )
        return con

    def table(self, name: str) -> pa.Table:
        """A whole table as Arrow (for small stores and tests; use connect() for real queries)."""
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        con = self.connect()
        try:
            return con.sql(f"SELECT * FROM {name}").to_arrow_table()
        finally:
            con.close()


class Transaction:
    """One writer's changes. `apply` staged archives, then `commit` (repeatable) makes them visible."""

    def __init__(self, store: Store):
        self.store = store
        self.manifest = store.read_manifest()
        self.staging_root = store.root / "staging" / uuid.uuid4().hex
        self._touched: set[str] = set()
        self._reports: dict[str, SourceReport] = {}
        self._written: list[Path] = []
        self._committed_paths = {entry.path for entry in self.manifest.accounts.values()}
        self._merge_con: duckdb.DuckDBPyConnection | None = None
        self._sweep_orphans()

    def _sweep_orphans(self) -> None:
        """Remove what a crashed writer left: staging dirs, and version dirs the manifest never named."""
        staging = self.store.root / "staging"
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
        referenced = {entry.path for entry in self.manifest.accounts.values()}
        referenced.update(g.path for g in self.manifest.garbage)
        accounts_dir = self.store.root / "accounts"
        if not accounts_dir.exists():
            return
        for account_dir in accounts_dir.iterdir():
            for version in account_dir.iterdir():
                rel = str(version.relative_to(self.store.root))
                if rel not in referenced:
                    log.info("removing unreferenced version %s (left by an interrupted write)", rel)
                    shutil.rmtree(version, ignore_errors=True)

    def close(self) -> None:
        """Release resources and remove staging (what was not applied is dropped)."""
        if self._merge_con is not None:
            self._merge_con.close()
            self._merge_con = None
        shutil.rmtree(self.staging_root, ignore_errors=True)

    def _new_version_dir(self, account_id: int) -> Path:
        name = f"{self.manifest.generation + 1:08d}-{uuid.uuid4().hex[:8]}"
        return self.store.root / "accounts" / str(account_id) / name

    def stage(self, archive: AccountArchive) -> StagedArchive:
        return stage_archive(archive, self.staging_root)

    def apply(self, staged: StagedArchive) -> None:
        """Merge a staged snapshot into this transaction's view of the account."""
        key = str(staged.account_id)
        entry = self.manifest.accounts.get(key)
        target = self._new_version_dir(staged.account_id)
        staged_dir = Path(staged.directory)
        self._written.append(target)
        if entry is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged_dir, target)
            entry = AccountEntry(
                account_id=staged.account_id,
                username=staged.username,
                path=str(target.relative_to(self.store.root)),
                rows={k: v for k, v in staged.rows.items() if v},
                snapshots=[staged.snapshot],
                section_at={s: staged.snapshot.observed_at for s in staged.sections},
                updated_at=_now(),
            )
        else:
            snapshots = [s for s in entry.snapshots if s != staged.snapshot] + [staged.snapshot]
            rows, section_at = merge_versions(
                VersionSide(self.store.root / entry.path, entry.rows),
                VersionSide(staged_dir, staged.rows),
                old_section_at=entry.section_at,
                new_observed_at=staged.snapshot.observed_at,
                new_sections=staged.sections,
                snapshots=snapshots,
                out_dir=target,
                con=self._merge_con or self._open_merge_connection(),
            )
            self._retire(entry.path)
            shutil.rmtree(staged_dir, ignore_errors=True)
            newest = max(snapshots, key=lambda s: s.observed_at)
            entry = AccountEntry(
                account_id=staged.account_id,
                username=staged.username if newest == staged.snapshot else entry.username,
                path=str(target.relative_to(self.store.root)),
                rows={k: v for k, v in rows.items() if v},
                snapshots=sorted(snapshots, key=lambda s: s.observed_at),
                section_at=section_at,
                updated_at=_now(),
            )
        self.manifest.accounts[key] = entry
        self._touched.add(key)
        self._reports[key] = staged.report

    def _open_merge_connection(self) -> duckdb.DuckDBPyConnection:
        self._merge_con = merge_connection()
        return self._merge_con

    def _retire(self, path: str) -> None:
        """An old version stays on disk for a grace period: a reader may still be scanning it."""
        if path in self._committed_paths:
            self.manifest.garbage.append(Garbage(path=path, since=_now()))
        else:
            shutil.rmtree(self.store.root / path, ignore_errors=True)

    def resolve_conflicts(self) -> dict[str, int]:
        """Enforce one account per tweet id: rows of accounts touched here that claim an id held elsewhere go.

        Rows already committed win over incoming ones (the store never loses what it held); between
        two incoming accounts, the newer snapshot wins, then the lower account id.
        """
        if not self._touched:
            return {}
        tweet_files = {
            key: self.store.root / e.path / "tweets.parquet"
            for key, e in self.manifest.accounts.items()
            if e.rows.get("tweets")
        }
        touched = [k for k in self._touched if k in tweet_files]
        if not touched or len(tweet_files) < 2:
            return {}
        con = duckdb.connect()
        try:
            listing = ", ".join(sql_path(p) for p in tweet_files.values())
            con.execute(
                f"CREATE TEMP TABLE ids AS SELECT tweet_id, account_id, snapshot_at FROM read_parquet([{listing}])"
            )
            con.register(
                "touched", pa.table({"account_id": pa.array([int(k) for k in touched], type=pa.int64())})
            )
            losers = con.execute(
                """WITH dup AS (
                    SELECT i.*, (i.account_id IN (SELECT account_id FROM touched)) AS incoming
                    FROM ids i WHERE tweet_id IN (SELECT tweet_id FROM ids GROUP BY tweet_id HAVING count(*) > 1)),
                ranked AS (
                    SELECT *, row_number() OVER (PARTITION BY tweet_id
                        ORDER BY incoming ASC, snapshot_at DESC, account_id ASC) AS rn FROM dup)
                SELECT account_id, list(tweet_id) FROM ranked WHERE rn > 1 GROUP BY account_id"""
            ).fetchall()
        finally:
            con.close()
        dropped: dict[str, int] = {}
        for account_id, ids in losers:
            key = str(account_id)
            self._drop_tweets(key, ids)
            dropped[key] = len(ids)
            report = self._reports.get(key)
            if report is not None:
                report.skipped[CONFLICT_REASON] = report.skipped.get(CONFLICT_REASON, 0) + len(ids)
            log.warning("account %s: %d tweet(s) skipped: %s", key, len(ids), CONFLICT_REASON)
        return dropped

    def _drop_tweets(self, key: str, tweet_ids: list[int]) -> None:
        entry = self.manifest.accounts[key]
        source = self.store.root / entry.path
        target = self._new_version_dir(entry.account_id)
        target.mkdir(parents=True)
        self._written.append(target)
        drop = pa.array(tweet_ids, type=pa.int64())
        rows = dict(entry.rows)
        for name, count in entry.rows.items():
            if not count:
                continue
            table = pq.read_table(source / f"{name}.parquet")
            if name in ("tweets", "urls", "media", "mentions"):
                table = table.filter(pc.invert(pc.is_in(table["tweet_id"], value_set=drop)))
            rows[name] = table.num_rows
            if table.num_rows:
                write_table(table, target / f"{name}.parquet")
        self._retire(entry.path)
        self.manifest.accounts[key] = entry.model_copy(
            update={
                "path": str(target.relative_to(self.store.root)),
                "rows": {k: v for k, v in rows.items() if v},
            }
        )

    def record_run(self, run: IngestRun) -> None:
        self.manifest.history = [*self.manifest.history, run][-HISTORY_KEPT:]

    def commit(self) -> None:
        """Make everything applied so far visible, atomically."""
        self.resolve_conflicts()
        sync_dirs(self._written)
        self._written.clear()
        self.manifest.generation += 1
        self._collect_garbage()
        atomic_write_bytes(
            self.store.manifest_path,
            orjson.dumps(self.manifest.model_dump(mode="json"), option=orjson.OPT_INDENT_2),
        )
        self._committed_paths = {entry.path for entry in self.manifest.accounts.values()}
        self._touched.clear()
        self._reports.clear()

    def _collect_garbage(self) -> None:
        keep: list[Garbage] = []
        cutoff = _now() - dt.timedelta(seconds=self.store.gc_grace_s)
        for item in self.manifest.garbage:
            if item.since <= cutoff:
                shutil.rmtree(self.store.root / item.path, ignore_errors=True)
            else:
                keep.append(item)
        self.manifest.garbage = keep
