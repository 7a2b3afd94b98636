"""Reply trees across accounts, and the paths through them that become training examples.

The graph is built for the whole store at once with numpy (ids, parents, roots, depths:
a few arrays of 8-byte numbers per tweet, so 15M tweets fit easily); tweet texts then
stream tree by tree in root order from DuckDB (see build.py), so memory stays bounded.

Edges: a reply's parent is `reply_to_tweet_id`, remapped through `edits` when it names
an earlier version of an edited tweet. An edge is kept only when the parent is in the
store, live (not deleted), and *older* than the reply (a smaller snowflake id); this
makes cycles impossible and turns a tweet that replies to itself, or to a newer tweet,
into a root with a counted reason. A tweet whose parent is missing starts its own tree
and is marked `parent_missing`.

Within a tree:
- a **unit** is a maximal run of same-author tweets where each links to the next as its
  only child; a unit is never split between examples, so masking stays consistent;
- a **branch** is a root-to-leaf path of units (children visited same-author first, then
  by time, so a self-thread reads in order);
- a **two-party segment** is a maximal path along which exactly two accounts speak.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

GRAPH_QUERY = """
SELECT t.tweet_id,
       coalesce(e.final_tweet_id, t.reply_to_tweet_id) AS parent_id,
       t.reply_to_tweet_id IS NOT NULL AS is_reply,
       t.account_id,
       epoch_ms(t.created_at) AS created_ms,
       t.favorite_count,
       t.retweet_count,
       length(t.full_text) - t.mention_prefix_len AS body_length
FROM tweets t
LEFT JOIN edits e ON e.tweet_id = t.reply_to_tweet_id
WHERE NOT t.deleted AND NOT t.is_retweet
ORDER BY t.tweet_id
"""

ABSURD_COUNT = 10**9
"""A like or retweet count above this (or negative) is treated as unknown."""


@dataclass
class Graph:
    """Every conversational tweet of the store (no retweets, no deleted tweets), sorted by id."""

    ids: np.ndarray
    parent: np.ndarray  # index of the parent, -1 for roots
    root: np.ndarray  # index of the tree root
    depth: np.ndarray
    parent_missing: np.ndarray  # a reply whose parent is not in the store
    account: np.ndarray
    created_ms: np.ndarray
    likes: np.ndarray  # float, NaN when unknown or absurd
    retweets: np.ndarray
    body_length: np.ndarray
    skipped: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, tweet_ids: np.ndarray) -> np.ndarray:
        """Positions of tweet ids in the graph (-1 where absent)."""
        pos = np.searchsorted(self.ids, tweet_ids)
        pos_clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (
            (pos < len(self.ids)) & (self.ids[pos_clipped] == tweet_ids)
            if len(self.ids)
            else np.zeros(len(tweet_ids), bool)
        )
        return np.where(found, pos_clipped, -1)

    @property
    def n_trees(self) -> int:
        return int((self.parent < 0).sum())


def _counts(values: np.ndarray, skipped: Counter[str], name: str) -> np.ndarray:
    out = values.astype(np.float64)
    absurd = (out < 0) | (out > ABSURD_COUNT)
    if absurd.any():
        skipped[f"absurd {name} (treated as unknown)"] += int(absurd.sum())
        out[absurd] = np.nan
    return out


def _pointer_jump(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Root index and depth of every node, by repeated doubling (log(depth) vectorized passes)."""
    n = len(parent)
    idx = np.arange(n)
    jump = np.where(parent >= 0, parent, idx)
    dist = (parent >= 0).astype(np.int64)
    while True:
        nxt = jump[jump]
        if np.array_equal(nxt, jump):
            return jump, dist
        dist = dist + dist[jump]
        jump = nxt


def build_graph(con: duckdb.DuckDBPyConnection) -> Graph:
    """The reply graph of the store behind `con` (a Store.connect() connection)."""
    table = con.sql(GRAPH_QUERY).to_arrow_table()
    ids = table["tweet_id"].to_numpy()
    parent_ids = table["parent_id"].fill_null(-1).to_numpy()
    is_reply = table["is_reply"].to_numpy(zero_copy_only=False)
    skipped: Counter[str] = Counter()
    n = len(ids)
    pos = np.searchsorted(ids, parent_ids)
    pos_clipped = np.minimum(pos, max(n - 1, 0))
    found = (parent_ids >= 0) & (pos < n) & (ids[pos_clipped] == parent_ids) if n else np.zeros(0, bool)
    self_reply = parent_ids == ids
    newer = found & (parent_ids > ids)
    if self_reply.any():
        skipped["tweet replies to itself (made a root)"] += int(self_reply.sum())
    if newer.any():
        skipped["parent is newer than the reply (made a root)"] += int((newer & ~self_reply).sum())
    valid = found & (parent_ids < ids)
    parent = np.where(valid, pos_clipped, -1)
    root, depth = _pointer_jump(parent)
    return Graph(
        ids=ids,
        parent=parent,
        root=root,
        depth=depth,
        parent_missing=is_reply & ~valid,
        account=table["account_id"].to_numpy(),
        created_ms=table["created_ms"].to_numpy(),
        likes=_counts(table["favorite_count"].fill_null(-1).to_numpy(), skipped, "like count"),
        retweets=_counts(table["retweet_count"].fill_null(-1).to_numpy(), skipped, "retweet count"),
        body_length=table["body_length"].fill_null(0).to_numpy().astype(np.float64),
        skipped=skipped,
    )


# -- one tree ---------------------------------------------------------------------------------------


@dataclass
class Unit:
    """Consecutive same-author tweets that every path through the tree keeps together."""

    id: int
    author: int
    tweets: list[int]  # row indices within the tree, in order
    children: list[int] = field(default_factory=list)  # unit ids


@dataclass
class Tree:
    """One conversation: rows (tweets, parent before child) and the units over them."""

    root_id: int
    rows: list[dict[str, Any]]
    units: list[Unit]
    root_unit: int

    @property
    def parent_missing(self) -> bool:
        return bool(self.rows[0]["parent_missing"])


def make_tree(rows: list[dict[str, Any]]) -> Tree:
    """Group a tree's rows into units. Rows carry tweet_id, parent_id (None for the root), account_id, created_ms."""
    index = {row["tweet_id"]: i for i, row in enumerate(rows)}
    children: list[list[int]] = [[] for _ in rows]
    root = -1
    for i, row in enumerate(rows):
        parent = row["parent_id"]
        if parent is None or parent not in index:
            root = i
        else:
            children[index[parent]].append(i)
    for kids in children:
        if len(kids) > 1:
            kids.sort(key=lambda k: rows[k]["created_ms"])
    units: list[Unit] = []

    def start_unit(head: int) -> int:
        unit = Unit(id=len(units), author=rows[head]["account_id"], tweets=[head])
        units.append(unit)
        return unit.id

    # Iterative walk (deep self-threads would overflow recursion).
    root_unit = start_unit(root)
    stack = [root_unit]
    while stack:
        unit = units[stack.pop()]
        tail = unit.tweets[-1]
        while len(children[tail]) == 1 and rows[children[tail][0]]["account_id"] == unit.author:
            tail = children[tail][0]
            unit.tweets.append(tail)
        kids = children[tail]
        # Same-author continuations first: the first path through a fork follows the author's own thread.
        kids = sorted(kids, key=lambda k: (rows[k]["account_id"] != unit.author, rows[k]["created_ms"]))
        for kid in kids:
            unit.children.append(start_unit(kid))
        stack.extend(reversed(unit.children))
    return Tree(root_id=rows[root]["tweet_id"], rows=rows, units=units, root_unit=root_unit)


def branches(tree: Tree) -> list[list[int]]:
    """Every root-to-leaf path, as unit ids, in depth-first order."""
    out: list[list[int]] = []
    stack: list[tuple[int, list[int]]] = [(tree.root_unit, [])]
    while stack:
        unit_id, path = stack.pop()
        path = [*path, unit_id]
        kids = tree.units[unit_id].children
        if not kids:
            out.append(path)
        for kid in reversed(kids):
            stack.append((kid, path))
    return out


def two_party_segments(tree: Tree, paths: list[list[int]]) -> list[list[int]]:
    """Maximal paths (as unit ids) along which exactly two accounts speak, deduplicated across branches.

    Along a branch, a segment grows while at most two authors appear; when a third speaks, the
    next segment starts at the last run of the previous speaker. A segment seen in one branch
    that is a prefix of a longer one seen in another is not maximal in the tree and is dropped.
    """
    found: dict[tuple[int, ...], None] = {}
    for path in paths:
        authors = [tree.units[u].author for u in path]
        start = 0
        speakers = {authors[0]} if authors else set()
        for j in range(1, len(path) + 1):
            if j < len(path) and (authors[j] in speakers or len(speakers) < 2):
                speakers.add(authors[j])
                continue
            if len(speakers) == 2:
                found[tuple(path[start:j])] = None
            if j < len(path):
                # the new segment keeps the run of the speaker just before the newcomer
                k = j - 1
                while k > start and authors[k - 1] == authors[j - 1]:
                    k -= 1
                start = k
                speakers = {authors[j - 1], authors[j]}
    by_start: dict[int, list[tuple[int, ...]]] = {}
    for key in found:
        by_start.setdefault(key[0], []).append(key)
    dropped: set[tuple[int, ...]] = set()
    for group in by_start.values():
        for key in group:
            if any(len(other) > len(key) and other[: len(key)] == key for other in group):
                dropped.add(key)
    # in order of discovery: depth-first, like the branches
    return [list(key) for key in found if key not in dropped]


def windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) windows covering a path of `length` units, `overlap` units shared between neighbours."""
    if length <= size:
        return [(0, length)]
    stride = max(1, size - overlap)
    out = []
    start = 0
    while start + size < length:
        out.append((start, start + size))
        start += stride
    # the last window ends with the path and is full: no turn is left without context
    out.append((length - size, length))
    return out
