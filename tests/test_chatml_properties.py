"""Properties of conversation paths and masking, on generated trees (hypothesis)."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.datasets.chatml import ExampleConfig, ExampleCounter, Masker, RenderedTree, perspective_examples
from pipeline.datasets.conversations import branches, make_tree, two_party_segments, windows


@st.composite
def trees(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=40))
    authors = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=n, max_size=n))
    rows = []
    for i in range(n):
        parent = None if i == 0 else 1000 + draw(st.integers(min_value=0, max_value=i - 1))
        rows.append(
            {
                "tweet_id": 1000 + i,
                "parent_id": parent,
                "account_id": authors[i],
                "created_ms": 1_000 * i,
                "parent_missing": False,
            }
        )
    return rows


def render(rows: list[dict[str, Any]]) -> RenderedTree:
    tree = make_tree(rows)
    return RenderedTree(
        tree=tree,
        unit_text={u.id: " ||| ".join(f"t{rows[i]['tweet_id']}" for i in u.tweets) for u in tree.units},
        unit_tweets={u.id: [rows[i]["tweet_id"] for i in u.tweets] for u in tree.units},
        names={a: (f"user{a}", f"User {a}") for a in range(1, 5)},
        quality={row["tweet_id"]: 0.5 for row in rows},
    )


def examples(
    rendered: RenderedTree, paths: list[list[int]], kind: str, config: ExampleConfig
) -> list[dict[str, Any]]:
    return list(
        perspective_examples(
            rendered,
            paths,
            kind=kind,
            masker=Masker(),
            personas=None,
            config=config,
            counter=ExampleCounter(),
        )
    )


def trained_counts(rows: list[dict[str, Any]]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for row in rows:
        for message in row["messages"]:
            if message["train"]:
                counts.update(message["tweet_ids"])
    return counts


def seen(rows: list[dict[str, Any]]) -> set[int]:
    return {t for row in rows for m in row["messages"] for t in m["tweet_ids"]}


CONFIGS = [ExampleConfig(), ExampleConfig(max_turns=4, overlap=1), ExampleConfig(max_turns=2, overlap=0)]


@settings(max_examples=150, deadline=None)
@given(trees(), st.sampled_from(CONFIGS))
def test_every_tweet_is_trained_exactly_once_in_multi_party(
    rows: list[dict[str, Any]], config: ExampleConfig
) -> None:
    rendered = render(rows)
    paths = branches(rendered.tree)
    out = examples(rendered, paths, "multi_party", config)
    counts = trained_counts(out)
    tree = rendered.tree
    in_conversations = {
        t
        for path in paths
        if len({tree.units[u].author for u in path}) > 1
        for u in path
        for t in rendered.unit_tweets[u]
    }
    # every tweet on a path with two or more speakers is trained, and never twice
    assert set(counts) == in_conversations
    assert all(c == 1 for c in counts.values())
    assert seen(out) == in_conversations


@settings(max_examples=150, deadline=None)
@given(trees(), st.sampled_from(CONFIGS))
def test_two_party_examples_alternate_two_speakers_and_train_once(
    rows: list[dict[str, Any]], config: ExampleConfig
) -> None:
    rendered = render(rows)
    segments = two_party_segments(rendered.tree, branches(rendered.tree))
    for segment in segments:
        assert len({rendered.tree.units[u].author for u in segment}) == 2
    out = examples(rendered, segments, "two_party", config)
    for row in out:
        turns = row["messages"][1:]
        assert len({m["name"] for m in turns}) == 2, row
        assert all(a["name"] != b["name"] for a, b in itertools.pairwise(turns)), row
        assert all(a["role"] != b["role"] for a, b in itertools.pairwise(turns)), row
        assert any(m["train"] for m in turns)
    assert all(c == 1 for c in trained_counts(out).values())


@settings(max_examples=100, deadline=None)
@given(trees())
def test_branches_cover_every_unit_and_units_never_split(rows: list[dict[str, Any]]) -> None:
    tree = make_tree(rows)
    paths = branches(tree)
    assert {u for p in paths for u in p} == {u.id for u in tree.units}
    assert sorted(i for u in tree.units for i in u.tweets) == list(range(len(rows)))
    by_row = {i: row for i, row in enumerate(rows)}
    for unit in tree.units:  # a unit is one author's unbroken chain
        assert len({by_row[i]["account_id"] for i in unit.tweets}) == 1
        for a, b in zip(unit.tweets, unit.tweets[1:], strict=False):
            assert by_row[b]["parent_id"] == by_row[a]["tweet_id"]


def test_windows_cover_long_paths_with_overlap() -> None:
    assert windows(5, 24, 8) == [(0, 5)]
    assert windows(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert windows(3, 2, 0) == [(0, 2), (1, 3)]  # the last window is full, never a lone turn
    covered = {i for start, stop in windows(101, 24, 8) for i in range(start, stop)}
    assert covered == set(range(101))
