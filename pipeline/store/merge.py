"""Merge a new snapshot of an account into the version the store holds.

Rules (order-independent: ingesting archives old-then-new or new-then-old gives the same store):
- one row per tweet id; the row from the newest snapshot wins, so the newest engagement counts win;
- a tweet is flagged `deleted` when a snapshot newer than the one it last appeared in covers its
  date and lacks it (it is kept, flagged, never silently dropped or silently kept as live);
- earlier versions of edited tweets are dropped in favour of the last version (`edits` maps them);
- URLs, media and mentions follow their tweet's winning snapshot;
- sections (likes, followers, following, profile) come whole from the newest snapshot that had them;
- the account row (its handle can change) comes from the newest snapshot.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa

from pipeline.records import SCHEMAS, SECTION_TABLES, TWEET_CHILD_TABLES
from pipeline.sources.base import Snapshot
from pipeline.store.atomic import fsync_path


def sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _snapshots_table(snapshots: list[Snapshot]) -> pa.Table:
    ts = pa.timestamp("ms", tz="UTC")
    return pa.table(
        {
            "observed_at": pa.array([s.observed_at for s in snapshots], type=ts),
            "coverage_start": pa.array([s.coverage_start for s in snapshots], type=ts),
            "coverage_end": pa.array([s.coverage_end for s in snapshots], type=ts),
        }
    )


class VersionSide:
    """One side of a merge: a directory of table files and the tables it holds rows for."""

    def __init__(self, directory: Path, rows: dict[str, int]):
        self.directory = directory
        self.rows = rows

    def relation(self, table: str) -> str:
        if self.rows.get(table):
            return f"read_parquet({sql_path(self.directory / f'{table}.parquet')})"
        return f"empty_{table}"


def merge_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for merges; reuse it across merges (setting one up costs ~35 ms)."""
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    for name, schema in SCHEMAS.items():
        con.register(f"empty_{name}", schema.empty_table())
    return con


_TEMPS = ("edits_m", "chosen", *(f"out_{name}" for name in SCHEMAS))


def merge_versions(
    old: VersionSide,
    new: VersionSide,
    *,
    old_section_at: dict[str, dt.datetime],
    new_observed_at: dt.datetime,
    new_sections: list[str],
    snapshots: list[Snapshot],
    out_dir: Path,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[dict[str, int], dict[str, dt.datetime]]:
    """Write the merged version into `out_dir`; return its row counts and where each section came from."""
    out_dir.mkdir(parents=True, exist_ok=False)
    own = con is None
    con = merge_connection() if con is None else con
    try:
        con.register("snaps", _snapshots_table(snapshots))

        con.execute(
            f"""CREATE TEMP TABLE edits_m AS
            SELECT tweet_id, max(final_tweet_id) AS final_tweet_id, any_value(account_id) AS account_id
            FROM (SELECT * FROM {new.relation("edits")} UNION ALL SELECT * FROM {old.relation("edits")})
            GROUP BY tweet_id"""
        )
        con.execute(
            f"""CREATE TEMP TABLE chosen AS
            SELECT * EXCLUDE (rn) FROM (
                SELECT *, row_number() OVER (PARTITION BY tweet_id ORDER BY snapshot_at DESC, side DESC) AS rn
                FROM (SELECT *, 1 AS side FROM {new.relation("tweets")}
                      UNION ALL BY NAME
                      SELECT *, 0 AS side FROM {old.relation("tweets")})
            ) WHERE rn = 1 AND tweet_id NOT IN (SELECT tweet_id FROM edits_m)"""
        )
        outputs: dict[str, str] = {
            "tweets": """SELECT c.* EXCLUDE (side, deleted),
                    EXISTS (SELECT 1 FROM snaps s
                            WHERE s.observed_at > c.snapshot_at
                              AND c.created_at >= coalesce(s.coverage_start, TIMESTAMPTZ '-infinity')
                              AND c.created_at <= coalesce(s.coverage_end, s.observed_at)) AS deleted
                FROM chosen c ORDER BY tweet_id""",
            "edits": "SELECT * FROM edits_m ORDER BY tweet_id",
        }
        for child in TWEET_CHILD_TABLES:
            outputs[child] = f"""
                SELECT x.* FROM {new.relation(child)} x JOIN chosen c ON x.tweet_id = c.tweet_id AND c.side = 1
                UNION ALL
                SELECT x.* FROM {old.relation(child)} x JOIN chosen c ON x.tweet_id = c.tweet_id AND c.side = 0
                ORDER BY tweet_id, position"""

        newest_old = max((s.observed_at for s in snapshots if s.observed_at != new_observed_at), default=None)
        new_is_newest = newest_old is None or new_observed_at >= newest_old
        outputs["accounts"] = f"SELECT * FROM {(new if new_is_newest else old).relation('accounts')}"

        section_at = dict(old_section_at)
        for section in SECTION_TABLES:
            if section in new_sections and (
                section not in old_section_at or new_observed_at >= old_section_at[section]
            ):
                outputs[section] = f"SELECT * FROM {new.relation(section)}"
                section_at[section] = new_observed_at
            elif section in old_section_at:
                outputs[section] = f"SELECT * FROM {old.relation(section)}"

        rows: dict[str, int] = {}
        for table, query in outputs.items():
            con.execute(f"CREATE TEMP TABLE out_{table} AS {query}")
            count = con.execute(f"SELECT count(*) FROM out_{table}").fetchone()
            rows[table] = int(count[0]) if count else 0
            if rows[table]:
                path = out_dir / f"{table}.parquet"
                con.execute(f"COPY out_{table} TO {sql_path(path)} (FORMAT parquet, COMPRESSION zstd)")
                fsync_path(path)
    finally:
        for temp in _TEMPS:
            con.execute(f"DROP TABLE IF EXISTS {temp}")
        if own:
            con.close()
    return rows, section_at
