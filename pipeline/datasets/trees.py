"""One part of a build: the conversation trees of one partition, turned into examples and pairs.

Trees are independent, so a build splits them into partitions by a hash of the root id and
runs one part per core (spawned processes), each streaming its trees from DuckDB in root
order and writing Parquet shards that the main process then adopts into the dataset folders.
With one part, the same code runs in the calling process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipeline.config import DatasetsConfig
from pipeline.datasets.chatml import (
    CHATML_SCHEMA,
    JOIN,
    ExampleConfig,
    ExampleCounter,
    Masker,
    RenderedTree,
    perspective_examples,
)
from pipeline.datasets.conversations import branches, make_tree, two_party_segments
from pipeline.datasets.prefs import PREF_SCHEMA, Reply, pairs_for_tweet
from pipeline.datasets.render import References, render_tweet
from pipeline.datasets.writer import Shard, ShardWriter
from pipeline.gcpause import gc_paused
from pipeline.store import Store
from pipeline.store.merge import sql_path

TREE_DATASETS = ("chatml-two-party", "chatml-multi-party", "chatml-persona", "prefs")
SCHEMAS: dict[str, pa.Schema] = {
    "chatml-two-party": CHATML_SCHEMA,
    "chatml-multi-party": CHATML_SCHEMA,
    "chatml-persona": CHATML_SCHEMA,
    "prefs": PREF_SCHEMA,
}
FLUSH_ROWS = 4096

TREE_QUERY = """
SELECT g.root_id, g.tweet_id, g.parent_id, g.parent_missing, g.quality, g.split,
       t.account_id, t.username, a.display_name, epoch_ms(t.created_at) AS created_ms,
       t.full_text, t.mention_prefix_len, t.quoted_tweet_id,
       coalesce(q.username, t.quoted_username) AS quoted_username, qa.display_name AS quoted_display_name,
       q.full_text AS quoted_text, q.mention_prefix_len AS quoted_prefix,
       l.links, m.media
FROM graph g
JOIN tweets t ON t.tweet_id = g.tweet_id
LEFT JOIN accounts a ON a.account_id = t.account_id
LEFT JOIN tweets q ON q.tweet_id = t.quoted_tweet_id AND NOT q.deleted
LEFT JOIN accounts qa ON qa.account_id = q.account_id
LEFT JOIN (SELECT tweet_id,
                  list({'url': url, 'expanded_url': expanded_url, 'status_tweet_id': status_tweet_id} ORDER BY position)
                  AS links
           FROM urls GROUP BY tweet_id) l ON l.tweet_id = t.tweet_id
LEFT JOIN (SELECT tweet_id, list({'media_type': media_type, 'alt_text': alt_text} ORDER BY position) AS media
           FROM media GROUP BY tweet_id) m ON m.tweet_id = t.tweet_id
ORDER BY g.root_id, g.depth, g.tweet_id
"""


@dataclass
class DatasetTally:
    """Aggregates of one dataset's examples: constant memory whatever the number of examples."""

    splits: Counter[str] = field(default_factory=Counter)
    turns: Counter[int] = field(default_factory=Counter)  # turns per example -> examples
    trained: int = 0
    speakers: int = 0

    def merge(self, other: DatasetTally) -> None:
        self.splits.update(other.splits)
        self.turns.update(other.turns)
        self.trained += other.trained
        self.speakers += other.speakers


@dataclass
class Tally:
    """Statistics gathered while examples stream past."""

    datasets: dict[str, DatasetTally] = field(default_factory=dict)
    pairs: Counter[str] = field(default_factory=Counter)
    pair_splits: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def example(self, dataset: str, split_name: str, row: dict[str, Any]) -> None:
        tally = self.datasets.get(dataset)
        if tally is None:
            tally = self.datasets[dataset] = DatasetTally()
        tally.splits[split_name] += 1
        tally.turns[row["num_messages"] - 1] += 1
        tally.trained += row["num_trained"]
        tally.speakers += len(row["participants"])

    def splits(self, dataset: str) -> dict[str, int]:
        if dataset == "prefs":
            return dict(self.pair_splits)
        return dict(self.datasets[dataset].splits) if dataset in self.datasets else {}

    def merge(self, other: Tally) -> None:
        for name, tally in other.datasets.items():
            self.datasets.setdefault(name, DatasetTally()).merge(tally)
        self.pairs.update(other.pairs)
        self.pair_splits.update(other.pair_splits)
        self.skipped.update(other.skipped)


@dataclass
class PartTask:
    """Everything a part needs; picklable, as it crosses into a spawned worker."""

    store_root: str
    graph_path: str
    part: int
    out_dir: str
    datasets: list[str]
    config: DatasetsConfig
    persona_ids: set[int]
    gold: set[str]
    references: References
    split_names: list[str]
    memory_limit: str


@dataclass
class PartResult:
    shards: dict[str, list[Shard]]
    tally: Tally


def iter_trees(con: duckdb.DuckDBPyConnection, rows_per_batch: int) -> Iterator[list[dict[str, Any]]]:
    """Rows of the `graph` view joined with their tweets, grouped into complete trees (root order)."""
    reader = con.sql(TREE_QUERY).to_arrow_reader(rows_per_batch)
    assert reader is not None
    pending: list[dict[str, Any]] = []
    for batch in reader:
        for row in batch.to_pylist():
            if pending and row["root_id"] != pending[0]["root_id"]:
                yield pending
                pending = []
            pending.append(row)
    if pending:
        yield pending


def render(tree_rows: list[dict[str, Any]], articles: dict[str, str], tally: Tally) -> RenderedTree:
    tree = make_tree(tree_rows)
    texts = [render_tweet(row, articles) for row in tree_rows]
    unit_text: dict[int, str] = {}
    unit_tweets: dict[int, list[int]] = {}
    for unit in tree.units:
        kept = [i for i in unit.tweets if texts[i]]
        if len(kept) < len(unit.tweets):
            tally.skipped["tweet with no text left after rendering (left out)"] += len(unit.tweets) - len(
                kept
            )
        if kept:
            unit_text[unit.id] = JOIN.join(texts[i] for i in kept)
            unit_tweets[unit.id] = [tree_rows[i]["tweet_id"] for i in kept]
    names = {row["account_id"]: (row["username"], row["display_name"]) for row in tree_rows}
    quality = {
        row["tweet_id"]: row["quality"] if row["quality"] is not None else float("nan") for row in tree_rows
    }
    return RenderedTree(
        tree=tree, unit_text=unit_text, unit_tweets=unit_tweets, names=names, quality=quality, texts=texts
    )


def pairs(
    rendered: RenderedTree, config: DatasetsConfig, gold: set[str], tally: Tally
) -> Iterator[dict[str, Any]]:
    """Preference pairs among the replies (by other accounts) to each tweet of the tree."""
    rows = rendered.tree.rows
    texts = rendered.texts
    index = {row["tweet_id"]: i for i, row in enumerate(rows)}
    replies: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        parent = row["parent_id"]
        if parent is not None and parent in index and texts[i]:
            replies.setdefault(index[parent], []).append(i)
    skipped: dict[str, int] = {}
    for parent, kids in replies.items():
        if len(kids) < 2 or not texts[parent]:
            continue
        parent_row = rows[parent]
        candidates = sorted(
            (
                Reply(
                    tweet_id=rows[k]["tweet_id"],
                    author=rows[k]["account_id"],
                    handle=rows[k]["username"],
                    created_ms=rows[k]["created_ms"],
                    text=texts[k],
                    quality=rendered.quality[rows[k]["tweet_id"]],
                )
                for k in kids
                if rows[k]["account_id"] != parent_row["account_id"]
            ),
            key=lambda r: (r.created_ms, r.tweet_id),
        )
        if len(candidates) < 2:
            continue
        yield from pairs_for_tweet(
            conversation_id=rendered.tree.root_id,
            parent_id=parent_row["tweet_id"],
            parent_text=texts[parent],
            parent_name=parent_row["username"],
            parent_ms=parent_row["created_ms"],
            replies=candidates,
            gold=gold,
            config=config.pairs,
            system_template=config.system_template,
            skipped=skipped,
        )
    tally.skipped.update(skipped)


class _Outputs:
    """Buffers rows per dataset and split, flushing them to shard writers in Arrow batches."""

    def __init__(self, writers: dict[str, ShardWriter], split_names: list[str]):
        self.writers = writers
        self.split_names = split_names
        self.buffers: dict[tuple[str, int], list[dict[str, Any]]] = {}

    def add(self, dataset: str, split: int, row: dict[str, Any]) -> None:
        buffer = self.buffers.setdefault((dataset, split), [])
        buffer.append(row)
        if len(buffer) >= FLUSH_ROWS:
            self.flush(dataset, split)

    def flush(self, dataset: str, split: int) -> None:
        rows = self.buffers.pop((dataset, split), [])
        if rows:
            self.writers[dataset].add(
                self.split_names[split], pa.Table.from_pylist(rows, schema=SCHEMAS[dataset])
            )

    def flush_all(self) -> None:
        for dataset, split in list(self.buffers):
            self.flush(dataset, split)


def run_part(task: PartTask, on_progress: Callable[[int, int], None] | None = None) -> PartResult:
    """Examples and pairs for the trees of `task.part`, written as shards under `task.out_dir`.

    `on_progress(trees, tweets)` is called after each batch of trees.
    """
    config = task.config
    con = Store(task.store_root).connect()
    writers = {name: ShardWriter(Path(task.out_dir) / name, SCHEMAS[name]) for name in task.datasets}
    try:
        con.execute(f"SET memory_limit = '{task.memory_limit}'")
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET temp_directory = {sql_path(Path(task.out_dir) / 'duckdb-tmp')}")
        con.execute(
            f"CREATE VIEW graph AS SELECT * FROM read_parquet({sql_path(Path(task.graph_path))}) WHERE part = {int(task.part)}"
        )
        tally = Tally()
        outputs = _Outputs(writers, task.split_names)
        example_config = ExampleConfig(
            system_template=config.system_template,
            max_turns=config.max_messages,
            overlap=min(config.overlap, config.max_messages - 1),
            name_style=config.name_style,
        )
        counters = {name: ExampleCounter() for name in task.datasets}
        with gc_paused():
            batch: list[list[dict[str, Any]]] = []
            batch_rows = 0
            for tree_rows in iter_trees(con, config.rows_per_batch):
                batch.append(tree_rows)
                batch_rows += len(tree_rows)
                if batch_rows >= config.rows_per_batch:
                    _process(batch, task, outputs, tally, example_config, counters)
                    if on_progress:
                        on_progress(len(batch), batch_rows)
                    batch, batch_rows = [], 0
            if batch:
                _process(batch, task, outputs, tally, example_config, counters)
                if on_progress:
                    on_progress(len(batch), batch_rows)
        outputs.flush_all()
        return PartResult(shards={name: w.finish() for name, w in writers.items()}, tally=tally)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        con.close()


def _process(
    trees: list[list[dict[str, Any]]],
    task: PartTask,
    outputs: _Outputs,
    tally: Tally,
    example_config: ExampleConfig,
    counters: dict[str, ExampleCounter],
) -> None:
    urls = {
        link["expanded_url"]
        for rows in trees
        for row in rows
        if row["links"]
        for link in row["links"]
        if link["status_tweet_id"] is None and link["expanded_url"]
    }
    articles = task.references.lookup(sorted(urls)) if urls else {}
    wanted = set(task.datasets)
    for rows in trees:
        rendered = render(rows, articles, tally)
        split = int(rows[0]["split"])
        split_name = task.split_names[split]
        paths = branches(rendered.tree)
        jobs: list[tuple[str, list[list[int]], str, set[int] | None]] = []
        if "chatml-multi-party" in wanted:
            jobs.append(("chatml-multi-party", paths, "multi_party", None))
        if "chatml-two-party" in wanted:
            jobs.append(("chatml-two-party", two_party_segments(rendered.tree, paths), "two_party", None))
        if "chatml-persona" in wanted:
            jobs.append(("chatml-persona", paths, "multi_party", task.persona_ids))
        for dataset, dataset_paths, kind, personas in jobs:
            for row in perspective_examples(
                rendered,
                dataset_paths,
                kind=kind,
                masker=Masker(),
                personas=personas,
                config=example_config,
                counter=counters[dataset],
            ):
                outputs.add(dataset, split, row)
                tally.example(dataset, split_name, row)
        if "prefs" in wanted:
            for pair in pairs(rendered, task.config, task.gold, tally):
                outputs.add("prefs", split, pair)
                tally.pairs[pair["kind"]] += 1
                tally.pair_splits[split_name] += 1


def run_part_in_worker(task: PartTask, progress: Any) -> PartResult:
    """Entry point in a spawned worker: progress goes back through a managed queue."""
    return run_part(task, on_progress=lambda trees, tweets: progress.put((trees, tweets)))
