"""The store's manifest: the one file that says which Parquet files make up the store.

Data files are immutable and live in per-account version directories. A write
builds a new version directory beside the old one and then replaces the
manifest atomically; until that rename, readers see the previous state, and a
crash leaves only an unreferenced directory that the next writer sweeps away.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from pipeline.sources.base import Snapshot, SourceReport

MANIFEST_FORMAT = 1


class AccountEntry(BaseModel):
    account_id: int
    username: str
    path: str = Field(description="version directory, relative to the store root")
    rows: dict[str, int] = Field(description="table -> rows; a table with 0 rows has no file")
    snapshots: list[Snapshot]
    section_at: dict[str, dt.datetime] = Field(
        default_factory=dict,
        description="section table -> observed_at of the snapshot it came from",
    )
    updated_at: dt.datetime

    @property
    def newest_snapshot(self) -> Snapshot:
        return max(self.snapshots, key=lambda s: s.observed_at)


class Garbage(BaseModel):
    path: str
    since: dt.datetime


class IngestRun(BaseModel):
    """One ingest command's outcome, kept in the manifest for `personas stats`."""

    started_at: dt.datetime
    finished_at: dt.datetime
    source: str
    inputs: int
    accounts: int
    unchanged_inputs: int = 0
    failed_inputs: dict[str, str] = Field(default_factory=dict, description="origin -> reason")
    report: SourceReport


class Manifest(BaseModel):
    format: int = MANIFEST_FORMAT
    generation: int = 0
    accounts: dict[str, AccountEntry] = Field(default_factory=dict)
    garbage: list[Garbage] = Field(default_factory=list)
    history: list[IngestRun] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict, description="source cursors, e.g. the last poll")

    def known_digests(self) -> frozenset[str]:
        """Content digests of every snapshot held: inputs with these bytes need no re-ingest."""
        return frozenset(
            s.content_sha256 for e in self.accounts.values() for s in e.snapshots if s.content_sha256
        )

    def uploads_held(self) -> dict[int, tuple[set[int], int]]:
        """account id -> (Community Archive upload ids ingested, newest snapshot time in epoch ms)."""
        return {
            e.account_id: (
                {s.upload_id for s in e.snapshots if s.upload_id is not None},
                int(e.newest_snapshot.observed_at.timestamp() * 1000),
            )
            for e in self.accounts.values()
        }


HISTORY_KEPT = 200
