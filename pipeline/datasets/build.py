"""`personas build`: every dataset from the store, in one streaming pass over the conversation trees.

Steps:
1. the reply graph of the whole store (numbers only: ids, parents, roots, depths);
2. quality scores, chronologically, with streaming t-digests (pipeline.scoring), saved for reuse;
3. a split per tree (hash of the root id, or by time), so no tree straddles two splits;
4. tweets with their texts, links, media and quoted tweets stream from DuckDB ordered by tree root
   (DuckDB sorts out of core when needed); each complete tree becomes ChatML examples and
   preference pairs, written in batches through the shared dataset writer;
5. the scored tweets dataset, the cards, and build-stats.json (read by `personas report`).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from pipeline.config import DatasetsConfig
from pipeline.cpu import default_workers
from pipeline.datasets.card import CardSpec
from pipeline.datasets.chatml import CHATML_FIELDS
from pipeline.datasets.conversations import Graph, build_graph
from pipeline.datasets.prefs import PREF_FIELDS
from pipeline.datasets.render import NoReferences, References
from pipeline.datasets.splits import assign_splits, time_split, unit_hash, validate_ratios
from pipeline.datasets.trees import (
    SCHEMAS,
    TREE_DATASETS,
    PartResult,
    PartTask,
    Tally,
    run_part,
    run_part_in_worker,
)
from pipeline.datasets.writer import DatasetWriter
from pipeline.progress import progress_task
from pipeline.scoring import SIGNALS, QualityWeights, StreamingScorer
from pipeline.store import Store
from pipeline.store.atomic import atomic_write_bytes, exclusive_lock
from pipeline.store.merge import sql_path

DATASETS = ("tweets", "chatml-two-party", "chatml-multi-party", "chatml-persona", "prefs")
ALIASES = {"chatml": ("chatml-two-party", "chatml-multi-party", "chatml-persona"), "pairs": ("prefs",)}
STATS_FILE = "build-stats.json"

TWEETS_QUERY = """
SELECT t.tweet_id, g.root_id AS conversation_id, g.parent_id, g.parent_missing,
       t.account_id, t.username, t.created_at, t.full_text,
       substr(t.full_text, t.mention_prefix_len + 1) AS body,
       t.lang, t.favorite_count, t.retweet_count, t.quoted_tweet_id, t.is_note, t.source,
       g.quality, g.p_likes, g.p_retweets, g.p_followers, g.p_length, g.p_engagement, g.split
FROM graph g JOIN tweets t ON t.tweet_id = g.tweet_id
ORDER BY t.tweet_id
"""

TWEET_FIELDS = {
    "tweet_id": "the tweet's id",
    "conversation_id": "root of its reply tree",
    "parent_id": "the tweet it replies to, when that tweet is in the store",
    "parent_missing": "it replies to a tweet that is not in the store",
    "account_id": "author",
    "username": "author's handle",
    "created_at": "time (UTC)",
    "full_text": "text as posted (HTML-unescaped; a long post's full text)",
    "body": "the text without a reply's leading @mentions",
    "quality": "composite quality 0-1: weighted percentiles of reach-normalized likes, likes and retweets, "
    "each against all earlier tweets (streaming t-digests)",
    "p_likes": "percentile of likes among earlier tweets",
    "p_retweets": "percentile of retweets among earlier tweets",
    "p_followers": "percentile of the author's follower count (archive follower list) among earlier tweets",
    "p_length": "percentile of body length among earlier tweets",
    "p_engagement": "percentile of likes / sqrt(1 + followers) among earlier tweets",
}


class DatasetStats(BaseModel):
    name: str
    splits: dict[str, int] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)


class BuildReport(BaseModel):
    built_at: dt.datetime
    seconds: float
    store: str
    tweets: int
    trees: int
    trees_parent_missing: int
    skipped: dict[str, int]
    quality_quantiles: dict[str, dict[str, float]]
    histograms: dict[str, dict[str, list[float]]]
    datasets: dict[str, DatasetStats]
    split_mode: str
    references: dict[str, Any] = Field(default_factory=dict)
    phases: dict[str, float] = Field(default_factory=dict, description="seconds per build step")


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now


def resolve_only(only: list[str] | None) -> list[str]:
    if not only:
        return list(DATASETS)
    chosen: list[str] = []
    for name in only:
        names = ALIASES.get(name, (name,))
        for n in names:
            if n not in DATASETS:
                raise ValueError(f"unknown dataset {name!r}; choose from {', '.join((*DATASETS, *ALIASES))}")
            if n not in chosen:
                chosen.append(n)
    return chosen


def account_follower_counts(store: Store) -> dict[int, float]:
    """Followers per archive owner: the length of the archive's follower list (absent when not uploaded)."""
    manifest = store.read_manifest()
    return {
        e.account_id: float(e.rows.get("followers", 0))
        for e in manifest.accounts.values()
        if "followers" in e.section_at
    }


def _follower_counts(store: Store, graph: Graph) -> np.ndarray:
    """Followers of each tweet's author (NaN when not uploaded)."""
    counts = account_follower_counts(store)
    unique, inverse = np.unique(graph.account, return_inverse=True)
    per_account = np.array([counts.get(int(a), np.nan) for a in unique], dtype=np.float64)
    return per_account[inverse] if len(unique) else np.zeros(0)


def _score(
    graph: Graph, followers: np.ndarray, weights: QualityWeights, chunk: int
) -> tuple[StreamingScorer, dict[str, np.ndarray]]:
    order = np.argsort(graph.created_ms, kind="stable")
    scorer = StreamingScorer(weights, chunk=chunk)
    result = scorer.score(
        {
            "likes": graph.likes[order],
            "retweets": graph.retweets[order],
            "followers": followers[order],
            "length": graph.body_length[order],
        }
    )
    out: dict[str, np.ndarray] = {}
    for name, values in (*result.percentiles.items(), ("quality", result.quality)):
        unsorted = np.empty(len(order))
        unsorted[order] = values
        out[name] = unsorted
    return scorer, out


def _tree_splits(graph: Graph, config: DatasetsConfig) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Split index per tweet (that of its tree), the split names, and how they were drawn."""
    if config.split_mode == "hash":
        names = list(validate_ratios(config.split_ratios))
        per_root = assign_splits(graph.ids[graph.root], config.split_ratios, seed=str(config.seed))
        return (
            per_root.astype(np.int8),
            names,
            {"mode": "hash of the root tweet id", "ratios": config.split_ratios},
        )
    last = np.full(len(graph), -1, dtype=np.int64)
    np.maximum.at(last, graph.root, graph.created_ms)
    roots = np.flatnonzero(graph.parent < 0)
    split, dev_start, test_start = time_split(
        last[roots].astype(np.float64), config.test_fraction, dev_fraction=config.dev_fraction
    )
    per_root = np.zeros(len(graph), dtype=np.int8)
    per_root[roots] = split
    detail = {
        "mode": "by the time of a tree's newest tweet",
        "dev_from": dt.datetime.fromtimestamp(dev_start / 1000, tz=dt.UTC).isoformat()
        if np.isfinite(dev_start)
        else None,
        "test_from": dt.datetime.fromtimestamp(test_start / 1000, tz=dt.UTC).isoformat()
        if np.isfinite(test_start)
        else None,
    }
    return per_root[graph.root], ["train", "dev", "test"], detail


def _histogram(values: np.ndarray, bins: np.ndarray) -> dict[str, list[float]]:
    values = values[~np.isnan(values)]
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def build(
    store: Store,
    config: DatasetsConfig,
    *,
    only: list[str] | None = None,
    references: References | None = None,
    reference_stats: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> BuildReport:
    """Build the selected datasets into `config.out`; returns (and writes) the build statistics.

    One build per output folder at a time (a lock file); what an interrupted build left behind
    (scratch folders, half-written datasets) is swept first. Finished datasets are replaced atomically.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / ".lock", blocking=False, what="this datasets folder"):
        for leftover in [*out.glob(".build-*"), *out.glob(".*.tmp"), *out.glob(".*.old")]:
            shutil.rmtree(leftover, ignore_errors=True)
        return _build(
            store,
            config,
            only=only,
            references=references,
            reference_stats=reference_stats,
            show_progress=show_progress,
        )


def _build(
    store: Store,
    config: DatasetsConfig,
    *,
    only: list[str] | None,
    references: References | None,
    reference_stats: dict[str, Any] | None,
    show_progress: bool,
) -> BuildReport:
    clock = time.perf_counter()
    selected = resolve_only(only)
    references = references or NoReferences()
    if not store.exists():
        raise ValueError(f"no store at {store.root}; ingest something first")
    out = Path(config.out)
    scratch = out / f".build-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    con = store.connect()
    con.execute(f"SET memory_limit = '{config.duckdb_memory_limit}'")
    con.execute(f"SET temp_directory = {sql_path(scratch / 'duckdb-tmp')}")
    writers: dict[str, DatasetWriter] = {}
    try:
        phases = _Phases()
        graph = build_graph(con)
        phases.mark("reply graph")
        followers = _follower_counts(store, graph)
        scorer, scores = _score(graph, followers, config.quality, config.quality_chunk)
        scorer.save(out / "scores" / "digests.json")
        phases.mark("quality scores")
        split, split_names, split_detail = _tree_splits(graph, config)
        parts = 1 if len(graph) < SMALL_BUILD else default_workers(config.workers, 64)
        graph_path = _write_graph(scratch, graph, scores, split, parts)
        con.execute(f"CREATE VIEW graph AS SELECT * FROM read_parquet({sql_path(graph_path)})")

        handles = dict(con.execute("SELECT lower(username), account_id FROM accounts").fetchall())
        wanted_personas = [h.lower().lstrip("@") for h in config.personas]
        missing = [h for h in wanted_personas if h not in handles]
        if missing:
            raise ValueError(f"persona(s) not in the store: {', '.join(missing)}")
        if "chatml-persona" in selected and not config.personas:
            selected.remove("chatml-persona")
        tree_datasets = [name for name in selected if name in TREE_DATASETS]
        tasks = [
            PartTask(
                store_root=str(store.root),
                graph_path=str(graph_path),
                part=k,
                out_dir=str(scratch / f"part-{k}"),
                datasets=tree_datasets,
                config=config,
                persona_ids={handles[h] for h in wanted_personas},
                gold={g.lower().lstrip("@") for g in config.pairs.gold_accounts},
                references=references,
                split_names=split_names,
                memory_limit=_split_memory(config.duckdb_memory_limit, parts),
            )
            for k in range(parts)
        ]
        tally = Tally()
        if tree_datasets:
            writers = {name: DatasetWriter(out / name, SCHEMAS[name]) for name in tree_datasets}
            for result in _run_parts(tasks, graph.n_trees, show_progress):
                tally.merge(result.tally)
                for name, shards in result.shards.items():
                    writers[name].add_shards(shards)
        phases.mark(f"conversations, examples and pairs ({parts} part{'s' if parts > 1 else ''})")
        if "tweets" in selected:
            _write_tweets(con, out, split_names, config, scores, show_progress)
            phases.mark("tweets dataset")
        report = _report(store, graph, scores, tally, config, split_detail, reference_stats, selected, clock)
        for name, writer in writers.items():
            infos = writer.close(_card(name, report, config, split_detail, reference_stats))
            report.datasets[name].splits = {k: v.num_examples for k, v in infos.items()}
        writers = {}
        phases.mark("cards")
        report.phases = phases.seconds
    finally:
        for writer in writers.values():
            writer.abort()
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    report.seconds = time.perf_counter() - clock
    atomic_write_bytes(
        out / STATS_FILE, orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    )
    return report


SMALL_BUILD = 50_000
"""Below this many tweets a build runs in one process: spawning workers would cost more than it saves."""


def _split_memory(limit: str, parts: int) -> str:
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?i?B)\s*", limit, re.IGNORECASE)
    if not match or parts <= 1:
        return limit
    return f"{float(match.group(1)) / parts:.3f}{match.group(2)}"


def _write_graph(
    scratch: Path, graph: Graph, scores: dict[str, np.ndarray], split: np.ndarray, parts: int
) -> Path:
    """The graph with scores, split and partition, as Parquet that every part reads."""
    parent_ids = np.where(graph.parent >= 0, graph.ids[np.maximum(graph.parent, 0)], 0)
    root_ids = graph.ids[graph.root]
    part = np.floor(unit_hash(root_ids, seed="build-part") * parts).astype(np.int16)
    table = pa.table(
        {
            "tweet_id": graph.ids,
            "root_id": root_ids,
            "parent_id": pa.array(parent_ids, mask=graph.parent < 0),
            "depth": graph.depth,
            "parent_missing": graph.parent_missing,
            "quality": pa.array(scores["quality"], from_pandas=True),
            **{f"p_{name}": pa.array(scores[name], from_pandas=True) for name in SIGNALS},
            "split": split,
            "part": part,
        }
    )
    path = scratch / "graph.parquet"
    pq.write_table(table, path, compression="zstd")
    return path


def _run_parts(tasks: list[PartTask], trees: int, show_progress: bool) -> Iterator[PartResult]:
    with progress_task("build", trees, "tweets", show=show_progress) as bar:
        if len(tasks) == 1:
            yield run_part(tasks[0], on_progress=lambda n, tweets: bar.advance(tweets, steps=n))
            return
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, ProcessPoolExecutor(len(tasks), mp_context=context) as pool:
            queue = manager.Queue()
            futures = [pool.submit(run_part_in_worker, task, queue) for task in tasks]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    n, tweets = queue.get()
                    bar.advance(tweets, steps=n)
                for future in done:
                    future.result()  # a failed part raises here
            while not queue.empty():
                n, tweets = queue.get()
                bar.advance(tweets, steps=n)
        for future in futures:
            yield future.result()


def _write_tweets(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    split_names: list[str],
    config: DatasetsConfig,
    scores: dict[str, np.ndarray],
    show_progress: bool,
) -> None:
    reader = con.sql(TWEETS_QUERY).to_arrow_reader(config.rows_per_batch)
    assert reader is not None
    schema = reader.schema.remove(reader.schema.get_field_index("split"))
    with DatasetWriter(out / "tweets", schema) as writer:
        with progress_task("tweets", None, "tweets", show=show_progress) as bar:
            for batch in reader:
                table = pa.Table.from_batches([batch])
                split = table["split"].to_numpy()
                table = table.drop_columns(["split"])
                for index, name in enumerate(split_names):
                    mask = split == index
                    if mask.any():
                        writer.add(name, table.filter(pa.array(mask)))
                bar.advance(table.num_rows)
        quality = scores["quality"]
        writer.close(
            CardSpec(
                pretty_name="Community tweets with quality scores",
                description=(
                    "Every live, non-retweet tweet of the store with its reply-tree id and streaming quality "
                    "scores: percentiles against all earlier tweets, so engagement is normalized over time."
                ),
                license=config.license,
                tags=["twitter", "community-archive", "tpot", "engagement"],
                fields=TWEET_FIELDS,
                statistics={
                    "tweets": len(quality),
                    "mean quality": float(np.nanmean(quality)) if len(quality) else 0.0,
                    "tweets with quality": int((~np.isnan(quality)).sum()),
                },
            )
        )


def _report(
    store: Store,
    graph: Graph,
    scores: dict[str, np.ndarray],
    tally: Tally,
    config: DatasetsConfig,
    split_detail: dict[str, Any],
    reference_stats: dict[str, Any] | None,
    selected: list[str],
    clock: float,
) -> BuildReport:
    quantiles = {}
    for name in ("quality", *SIGNALS):
        values = scores[name][~np.isnan(scores[name])]
        if len(values):
            quantiles[name] = {f"p{q}": float(np.percentile(values, q)) for q in (5, 25, 50, 75, 95)}
    histograms = {
        "quality": _histogram(scores["quality"], np.linspace(0, 1, 21)),
        **{f"p_{name}": _histogram(scores[name], np.linspace(0, 1, 21)) for name in SIGNALS},
    }
    datasets: dict[str, DatasetStats] = {}
    for name in selected:
        if name == "tweets":
            continue
        stats: dict[str, Any] = {}
        if name == "prefs":
            stats = {
                "pairs": sum(tally.pairs.values()),
                **{f"{k} pairs": v for k, v in sorted(tally.pairs.items())},
            }
        elif name in tally.datasets:
            counts = tally.datasets[name]
            turns = np.array(sorted(counts.turns))
            weights = np.array([counts.turns[t] for t in turns])
            examples = int(weights.sum())
            cumulative = np.cumsum(weights)
            stats = {
                "examples": examples,
                "mean messages per example": float((turns * weights).sum() / examples),
                "median messages per example": float(turns[np.searchsorted(cumulative, examples / 2)]),
                "max messages per example": int(turns.max()),
                "trained messages": counts.trained,
                "mean participants": counts.speakers / examples,
            }
            edges = np.arange(1, int(turns.max()) + 2, dtype=np.float64)
            histograms[f"{name}:messages"] = {
                "edges": edges.tolist(),
                "counts": [float(counts.turns.get(int(t), 0)) for t in edges[:-1]],
            }
        else:
            stats = {"examples": 0}
        datasets[name] = DatasetStats(name=name, splits=tally.splits(name), stats=stats)
    skipped = Counter(graph.skipped)
    skipped.update(tally.skipped)
    return BuildReport(
        built_at=dt.datetime.now(dt.UTC),
        seconds=time.perf_counter() - clock,
        store=str(store.root),
        tweets=len(graph),
        trees=graph.n_trees,
        trees_parent_missing=int((graph.parent_missing & (graph.parent < 0)).sum()),
        skipped=dict(skipped),
        quality_quantiles=quantiles,
        histograms=histograms,
        datasets=datasets,
        split_mode=str(split_detail.get("mode")),
        references=reference_stats or {},
    )


def _card(
    name: str,
    report: BuildReport,
    config: DatasetsConfig,
    split_detail: dict[str, Any],
    reference_stats: dict[str, Any] | None,
) -> CardSpec:
    stats = dict(report.datasets[name].stats)
    stats["trees in the store"] = report.trees
    stats["trees whose root replies to a missing tweet"] = report.trees_parent_missing
    if "quality" in report.quality_quantiles:
        for q, value in report.quality_quantiles["quality"].items():
            stats[f"quality {q}"] = value
    if reference_stats:
        for key, value in reference_stats.items():
            stats[f"hydration: {key}"] = value
    splits_text = f"Split by {split_detail['mode']}: " + ", ".join(
        f"{k}={v}" for k, v in split_detail.items() if k != "mode"
    )
    if name == "prefs":
        return CardSpec(
            pretty_name="Community reply preference pairs",
            description=(
                "Preference pairs from replies to the same tweet, for DPO and reward models (TRL's conversational "
                "preference format). `gold`: a gold account's reply over another account's "
                f"(gold: {', '.join(config.pairs.gold_accounts) or 'none'}); `engagement`: a later reply with higher "
                "time- and reach-normalized quality over an earlier one of similar length."
            ),
            license=config.license,
            task_categories=["text-generation", "reinforcement-learning"],
            tags=["dpo", "preference", "reward-model", "twitter", "community-archive"],
            fields=PREF_FIELDS,
            statistics=stats,
            extra={"Splits": splits_text},
        )
    descriptions = {
        "chatml-two-party": "Two-party exchanges: maximal paths of a reply tree along which exactly two accounts alternate "
        "(consecutive tweets of one speaker joined by ` ||| `).",
        "chatml-multi-party": "Multi-party conversations: every root-to-leaf branch of every reply tree, all participants "
        "named per message.",
        "chatml-persona": f"The conversations of chosen personas ({', '.join(config.personas)}), each seen from the "
        "persona's side.",
    }
    return CardSpec(
        pretty_name=f"Community conversations ({name.removeprefix('chatml-')}) in ChatML",
        description=descriptions[name]
        + " Each example is seen from one participant, the `assistant`; others are `user`. Loadable by TRL's "
        "SFTTrainer (`messages`).",
        license=config.license,
        tags=["chatml", "sft", "conversational", "persona", "twitter", "community-archive"],
        fields=CHATML_FIELDS,
        format_notes=(
            "**Masking.** All branches of a tree are kept, yet each tweet is trained (`train: true`) in exactly one "
            "example of this dataset and is context (`train: false`) everywhere else, so multi-epoch training does not "
            "over-train shared prefixes. Long paths are cut into windows of at most "
            f"{config.max_messages} turns sharing {config.overlap} turns of context.\n\n"
            "**Text.** A reply's leading @mentions are dropped; a quoted tweet follows the text as `<qt>@handle: …</qt>` "
            '(or a note that it is not in the archive); a linked article is `<ref url="…">text</ref>` once hydrated, '
            'else the placeholder `<ref url="…"/>`; media are `[image]`, `[gif]`, `[video]`.\n\n'
            f"**System message.** `{config.system_template}`; names alternate between display names and handles from "
            "one example to the next, so a model learns that both name the same person."
        ),
        statistics=stats,
        extra={"Splits": splits_text},
    )
