"""The one dataset writer: Hugging Face dataset folders (Parquet shards + a dataset card), written atomically.

A dataset folder looks like what `datasets.load_dataset(path)` and the Hub expect:

    README.md                          the card: YAML metadata (configs, features, splits, license, ...) + prose
    data/train-00000-of-00002.parquet  each split, sharded
    data/test-00000-of-00001.parquet

Rows stream in batches (`add`), so a dataset larger than memory can be written; shards
written elsewhere (by parallel build workers, with a `ShardWriter`) can be adopted
(`add_shards`). The folder is built beside its destination and renamed into place at
`close`, so a reader never sees a half-written dataset and an interrupted build leaves
the old one intact.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.datasets.card import CardSpec, SplitInfo, render_card
from pipeline.store.atomic import fsync_path

DEFAULT_SHARD_ROWS = 250_000


@dataclass(frozen=True)
class Shard:
    """A finished Parquet file holding `rows` rows of one split."""

    split: str
    path: Path
    rows: int


def as_table(rows: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    if isinstance(rows, pa.RecordBatch):
        rows = pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        return rows.select(schema.names).cast(schema)
    return pa.Table.from_pylist(list(rows), schema=schema)


class ShardWriter:
    """Rolls rows of each split into Parquet shards of at most `shard_rows` rows in one directory."""

    def __init__(self, directory: Path, schema: pa.Schema, *, shard_rows: int = DEFAULT_SHARD_ROWS):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.shard_rows = shard_rows
        self._open: dict[str, tuple[pq.ParquetWriter, Path, int]] = {}
        self._done: list[Shard] = []

    def add(self, split: str, rows: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]]) -> None:
        table = as_table(rows, self.schema)
        offset = 0
        while offset < table.num_rows:
            writer, path, written = self._open.get(split) or self._roll(split)
            take = min(table.num_rows - offset, self.shard_rows - written)
            writer.write_table(table.slice(offset, take))
            written += take
            offset += take
            self._open[split] = (writer, path, written)
            if written >= self.shard_rows:
                self._close(split)

    def _roll(self, split: str) -> tuple[pq.ParquetWriter, Path, int]:
        path = self.directory / f"{split}.{uuid.uuid4().hex[:12]}.parquet"
        state = (pq.ParquetWriter(path, self.schema, compression="zstd"), path, 0)
        self._open[split] = state
        return state

    def _close(self, split: str) -> None:
        writer, path, written = self._open.pop(split)
        writer.close()
        self._done.append(Shard(split, path, written))

    def finish(self) -> list[Shard]:
        for split in list(self._open):
            self._close(split)
        return list(self._done)

    def abort(self) -> None:
        for writer, _, _ in self._open.values():
            writer.close()
        self._open.clear()


class DatasetWriter:
    """Write one dataset folder: `add` batches (or `add_shards`) per split, then `close` with a card."""

    def __init__(self, destination: Path, schema: pa.Schema, *, shard_rows: int = DEFAULT_SHARD_ROWS):
        self.destination = Path(destination)
        self.schema = schema
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._work = self.destination.parent / f".{self.destination.name}.{uuid.uuid4().hex[:8]}.tmp"
        self._shards = ShardWriter(self._work / "data", schema, shard_rows=shard_rows)
        self._adopted: list[Shard] = []
        self._closed = False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.abort()

    def add(self, split: str, rows: pa.Table | pa.RecordBatch | Iterable[Mapping[str, Any]]) -> None:
        """Append rows (a table, a record batch, or dicts in schema order) to a split."""
        self._shards.add(split, rows)

    def add_shards(self, shards: Iterable[Shard]) -> None:
        """Take over finished shards (same schema) written elsewhere on this filesystem; they are moved."""
        for shard in shards:
            target = self._work / "data" / f"{shard.split}.{uuid.uuid4().hex[:12]}.parquet"
            os.replace(shard.path, target)
            self._adopted.append(Shard(shard.split, target, shard.rows))

    def abort(self) -> None:
        self._shards.abort()
        shutil.rmtree(self._work, ignore_errors=True)
        self._closed = True

    def close(self, card: CardSpec) -> dict[str, SplitInfo]:
        """Finish the shards, write the card, and move the folder into place atomically.

        A split without rows is left out: `datasets` cannot load a zero-row split.
        """
        if self._closed:
            raise RuntimeError("writer already closed")
        by_split: dict[str, list[Shard]] = {}
        for shard in [*self._shards.finish(), *self._adopted]:
            if shard.rows:
                by_split.setdefault(shard.split, []).append(shard)
            else:
                shard.path.unlink(missing_ok=True)
        infos: dict[str, SplitInfo] = {}
        for split, shards in by_split.items():
            size = 0
            for index, shard in enumerate(shards):
                final = shard.path.with_name(f"{split}-{index:05d}-of-{len(shards):05d}.parquet")
                shard.path.rename(final)
                size += final.stat().st_size
                fsync_path(final)
            infos[split] = SplitInfo(name=split, num_examples=sum(s.rows for s in shards), num_bytes=size)
        data = self._work / "data"
        if infos:
            fsync_path(data)
        else:
            shutil.rmtree(
                data, ignore_errors=True
            )  # no rows at all: the card says so, and there is nothing to load
        (self._work / "README.md").write_text(render_card(card, self.schema, list(infos.values())))
        fsync_path(self._work / "README.md")
        fsync_path(self._work)
        self._replace_destination()
        self._closed = True
        return infos

    def _replace_destination(self) -> None:
        old = None
        if self.destination.exists():
            old = self.destination.parent / f".{self.destination.name}.{uuid.uuid4().hex[:8]}.old"
            os.rename(self.destination, old)
        os.rename(self._work, self.destination)
        fsync_path(self.destination.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_dataset(
    destination: Path,
    schema: pa.Schema,
    splits: Mapping[str, pa.Table | Iterable[Mapping[str, Any]]],
    card: CardSpec,
    *,
    shard_rows: int = DEFAULT_SHARD_ROWS,
) -> dict[str, SplitInfo]:
    """Write a whole dataset at once (for data that fits in memory)."""
    with DatasetWriter(destination, schema, shard_rows=shard_rows) as writer:
        for name, rows in splits.items():
            writer.add(name, rows)
        return writer.close(card)
