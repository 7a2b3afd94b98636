"""What every source hands to the store: one account's snapshot, normalized."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
from pydantic import BaseModel, Field

log = logging.getLogger("pipeline.sources")

# How many individual skip messages one file may log per reason before only counting.
LOGGED_EXAMPLES_PER_REASON = 3


class SourceError(Exception):
    """A whole input (file, zip, API account) cannot be used. The message names it and says why."""

    def __init__(self, origin: str, reason: str):
        super().__init__(f"{origin}: {reason}")
        self.origin = origin
        self.reason = reason


class UnchangedInput(Exception):
    """The input's bytes were ingested before (same SHA-256): there is nothing new to parse."""

    def __init__(self, origin: str, digest: str):
        super().__init__(f"{origin}: unchanged since it was last ingested")
        self.origin = origin
        self.digest = digest


def check_digest(origin: str, digest: str, known: frozenset[str]) -> str:
    if digest in known:
        raise UnchangedInput(origin, digest)
    return digest


class Snapshot(BaseModel):
    """When and from where one account's data was observed, and which dates it covers.

    A tweet missing from a newer snapshot whose coverage includes the tweet's date
    was deleted by its author; outside the coverage (an upload restricted to a
    date range) its absence means nothing.
    """

    observed_at: dt.datetime
    coverage_start: dt.datetime | None = None
    coverage_end: dt.datetime | None = None
    source: str
    origin: str
    upload_id: int | None = None
    content_sha256: str | None = Field(
        None, description="of the input's bytes; an identical input is skipped"
    )


class SourceReport(BaseModel):
    """Counts of what one input held and what was done with it."""

    origin: str
    source: str
    counts: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict, description="record skipped: reason -> count")
    coerced: dict[str, int] = Field(
        default_factory=dict, description="field value unusable, stored as null: field -> count"
    )

    def merge(self, other: SourceReport) -> None:
        for mine, theirs in (
            (self.counts, other.counts),
            (self.skipped, other.skipped),
            (self.coerced, other.coerced),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value


class Problems:
    """Counts skipped records and coerced fields of one input, logging the first few of each."""

    def __init__(self, origin: str):
        self.origin = origin
        self.skipped: Counter[str] = Counter()
        self.coerced: Counter[str] = Counter()

    def skip(self, reason: str, where: str = "") -> None:
        self.skipped[reason] += 1
        if self.skipped[reason] <= LOGGED_EXAMPLES_PER_REASON:
            log.warning("%s: skipped %s: %s", self.origin, where or "record", reason)

    def note(self, message: str) -> None:
        log.info("%s: %s", self.origin, message)

    def coerce(self, field_name: str, value: object) -> None:
        self.coerced[field_name] += 1
        if self.coerced[field_name] <= LOGGED_EXAMPLES_PER_REASON:
            log.warning(
                "%s: field %r has unusable value %.60r; stored as null", self.origin, field_name, value
            )


@dataclass
class AccountArchive:
    """One account's normalized data from one snapshot.

    `tables` maps store table names (see pipeline.records.TABLES) to Arrow tables.
    A section the input did not carry at all (no likes uploaded, say) is absent
    from `tables`, so that merging keeps what an earlier snapshot had.
    """

    account_id: int
    username: str
    snapshot: Snapshot
    tables: dict[str, pa.Table]
    report: SourceReport
    warnings: list[str] = field(default_factory=list)
