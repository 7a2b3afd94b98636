"""`personas build` end to end: exact examples on hand-built trees, pairs, splits, cards, bad input."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

from pipeline.config import DatasetsConfig
from pipeline.datasets.build import build
from pipeline.ingest import ingest_files
from pipeline.store import Store
from tests.support.archives import archive, photo, tid, tweet, url, write

ALICE, BOB, CAROL = "1000", "2000", "3000"


def reply(k: int, text: str, to: int, user: str, name: str, **kw: Any) -> dict[str, Any]:
    return tweet(k, text, reply_to=tid(to), reply_user=user, reply_name=name, **kw)


def hand_built_store(tmp_path: Path) -> Store:
    alice = archive(
        account_id=ALICE,
        username="alice",
        tweets=[
            tweet(
                1,
                "what's the best book on attention? https://t.co/a1",
                likes="3",
                urls=[url("https://blog.example/attention", "https://t.co/a1")],
            ),
            reply(3, "@bob thanks! ordering it now", 2, BOB, "bob", likes="0"),
            reply(4, "also curious what others think", 3, ALICE, "alice"),
            reply(9, "@bob welcome back", 8, BOB, "bob"),
            tweet(
                10,
                "so true https://t.co/q7",
                urls=[url("https://twitter.com/ghost/status/777", "https://t.co/q7")],
            ),
        ],
    )
    bob = archive(
        account_id=BOB,
        username="bob",
        tweets=[
            reply(2, "@alice The Mind Illuminated", 1, ALICE, "alice", likes="9"),
            tweet(
                6,
                "quoting this gem https://t.co/q5",
                urls=[url(f"https://x.com/carol/status/{tid(5)}", "https://t.co/q5")],
            ),
            reply(8, "@somebody I'm back", 0, "99", "somebody")
            | {
                "tweet": {
                    **reply(8, "@somebody I'm back", 0, "99", "somebody")["tweet"],
                    "in_reply_to_status_id_str": "999",
                    "in_reply_to_status_id": "999",
                }
            },
            reply(11, "@alice agreed", 10, ALICE, "alice"),
        ],
    )
    carol = archive(
        account_id=CAROL,
        username="carol",
        tweets=[
            reply(5, "@bob @alice try reading it slowly", 2, BOB, "bob", likes="50"),
            reply(
                7,
                "@alice interesting https://t.co/m7",
                1,
                ALICE,
                "alice",
                likes="1",
                media=[photo(7007)],
                ext_media=[photo(7007)],
            ),
            reply(12, "@bob so kind", 6, BOB, "bob"),
        ],
    )
    store = Store(tmp_path / "store", gc_grace_s=0)
    files = [write(tmp_path / f"{n}.json", d) for n, d in (("alice", alice), ("bob", bob), ("carol", carol))]
    ingest_files(store, files, kind="archive", workers=1, show_progress=False)
    return store


def config(tmp_path: Path, **kw: Any) -> DatasetsConfig:
    values: dict[str, Any] = {
        "out": tmp_path / "datasets",
        "quality_chunk": 1,
        "split_ratios": {"train": 1.0},
    }
    values.update(kw)
    return DatasetsConfig(**values)


def load(out: Path, name: str) -> list[dict[str, Any]]:
    ds = load_dataset(str(out / name))
    return [row for split in ds.values() for row in split]


def turns(row: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    return [(m["role"], m["name"], m["content"], m["train"]) for m in row["messages"]]


def test_exact_examples_on_hand_built_trees(tmp_path: Path) -> None:
    store = hand_built_store(tmp_path)
    cfg = config(tmp_path, personas=["carol"])
    cfg.pairs.gold_accounts = ["carol"]
    report = build(store, cfg, show_progress=False)
    multi = {r["example_id"]: r for r in load(cfg.out, "chatml-multi-party")}
    tree = tid(1)
    a1 = 'what\'s the best book on attention? <ref url="https://blog.example/attention"/>'
    # branch 1 (a1, b2, a3+a4) from alice, then from bob; branch 2 (a1, b2, c5) from carol; branch 3 (a1, c7) from carol
    first = multi[f"{tree}:0:0:{ALICE}"]
    assert first["messages"][0]["content"] == "User is Bob. Assistant is Alice. Date is 2023-11-14."
    assert turns(first)[1:] == [
        ("assistant", "Alice", a1, True),
        ("user", "Bob", "The Mind Illuminated", False),
        ("assistant", "Alice", "thanks! ordering it now ||| also curious what others think", True),
    ]
    assert first["messages"][3]["tweet_ids"] == [tid(3), tid(4)]
    second = multi[f"{tree}:0:0:{BOB}"]
    assert second["messages"][0]["content"].startswith(
        "User is alice. Assistant is bob."
    )  # handles this time
    assert turns(second)[1:] == [
        ("user", "alice", a1, False),
        ("assistant", "bob", "The Mind Illuminated", True),
        ("user", "alice", "thanks! ordering it now ||| also curious what others think", False),
    ]
    assert turns(multi[f"{tree}:1:0:{CAROL}"])[1:] == [
        ("user", "Alice", a1, False),
        ("user", "Bob", "The Mind Illuminated", False),
        ("assistant", "Carol", "try reading it slowly", True),
    ]
    assert turns(multi[f"{tree}:2:0:{CAROL}"])[1:] == [
        ("user", "alice", a1, False),
        ("assistant", "carol", "interesting [image]", True),
    ]
    assert len([k for k in multi if k.startswith(f"{tree}:")]) == 4  # nothing left to train elsewhere

    # a quote of a stored tweet, and of one that is not in the archive
    quoting = multi[f"{tid(6)}:0:0:{BOB}"]
    assert turns(quoting)[1][2] == "quoting this gem\n<qt>@carol: try reading it slowly</qt>"
    missing = next(r for r in multi.values() if r["conversation_id"] == tid(10))
    assert "so true\n<qt>@ghost: [quoted tweet not in the archive]</qt>" in [
        m["content"] for m in missing["messages"]
    ]
    # the tree whose root replies to a tweet that is not in the archive is marked
    orphan = [r for r in multi.values() if r["conversation_id"] == tid(8)]
    assert orphan and all(r["parent_missing"] for r in orphan)
    assert not first["parent_missing"]

    two = {r["example_id"]: r for r in load(cfg.out, "chatml-two-party")}
    # segments: (a1 b2 a3a4), then (b2 c5) once carol speaks, and (a1 c7); (a1 b2) alone is not maximal
    assert {k.rsplit(":", 1)[1] for k in two if k.startswith(f"{tree}:")} == {ALICE, BOB, CAROL}
    assert sorted(
        turns(r)[-1][2] for k, r in two.items() if k.startswith(f"{tree}:") and r["persona"] == "carol"
    ) == [
        "interesting [image]",
        "try reading it slowly",
    ]

    persona = load(cfg.out, "chatml-persona")
    assert {r["persona"] for r in persona} == {"carol"}
    assert sorted(m["content"] for r in persona for m in r["messages"] if m["train"]) == [
        "interesting [image]",
        "so kind",
        "try reading it slowly",
    ]
    assert report.trees_parent_missing == 1


def test_preference_pairs(tmp_path: Path) -> None:
    store = hand_built_store(tmp_path)
    cfg = config(tmp_path)
    cfg.pairs.gold_accounts = ["carol"]
    cfg.pairs.margin = 0.05
    build(store, cfg, only=["prefs"], show_progress=False)
    pairs = {(p["kind"], p["prompt_tweet_id"]): p for p in load(cfg.out, "prefs")}
    gold = pairs[("gold", tid(2))]  # replies to bob's b2: carol's (gold) over alice's
    assert (gold["chosen_tweet_id"], gold["rejected_tweet_id"]) == (tid(5), tid(3))
    assert gold["prompt"] == [
        {"role": "system", "content": "User is bob. Assistant is carol. Date is 2023-11-14."},
        {"role": "user", "content": "The Mind Illuminated"},
    ]
    assert gold["chosen"] == [{"role": "assistant", "content": "try reading it slowly"}]
    assert (gold["chosen_author"], gold["rejected_author"]) == ("carol", "alice")
    # engagement: c5 (later, 50 likes) over a3 (earlier, 0 likes), lengths within 30%
    engagement = pairs[("engagement", tid(2))]
    assert (engagement["chosen_tweet_id"], engagement["rejected_tweet_id"]) == (tid(5), tid(3))
    assert engagement["chosen_score"] > engagement["rejected_score"]
    assert engagement["margin"] == pytest.approx(engagement["chosen_score"] - engagement["rejected_score"])
    assert engagement["chosen_created_at"] > engagement["rejected_created_at"]
    assert ("gold", tid(1)) in pairs  # carol's c7 over bob's b2 under alice's a1


def test_synthetic_end_to_end(small_store: Store, tmp_path: Path) -> None:
    cfg = DatasetsConfig(out=tmp_path / "datasets", personas=[])
    report = build(small_store, cfg, show_progress=False)
    con = small_store.connect()
    live = con.execute("SELECT count(*) FROM tweets WHERE NOT deleted AND NOT is_retweet").fetchone()[0]
    tweets = load(cfg.out, "tweets")
    assert len(tweets) == live == report.tweets
    for name in ("chatml-two-party", "chatml-multi-party", "prefs", "tweets"):
        ds = load_dataset(str(cfg.out / name))
        key = "conversation_id"
        by_split = {split: set(ds[split][key]) for split in ds}
        for a in by_split:
            for b in by_split:
                assert a == b or not (by_split[a] & by_split[b]), f"{name}: a tree in {a} and {b}"
        card = DatasetCard.load(cfg.out / name / "README.md")
        assert card.data.configs[0]["data_files"] and card.data.license == "other"
        assert {s["name"]: s["num_examples"] for s in card.data.dataset_info["splits"]} == {
            k: len(v) for k, v in ds.items()
        }
    multi = load(cfg.out, "chatml-multi-party")
    trained = Counter(t for r in multi for m in r["messages"] if m["train"] for t in m["tweet_ids"])
    assert trained and max(trained.values()) == 1
    in_examples = {t for r in multi for m in r["messages"] for t in m["tweet_ids"]}
    assert in_examples == set(trained)  # every tweet shown is trained exactly once
    assert "chatml-persona" not in report.datasets  # no personas asked for
    assert report.datasets["chatml-multi-party"].stats["mean participants"] >= 2


def test_time_split_puts_newest_trees_in_test(small_store: Store, tmp_path: Path) -> None:
    cfg = DatasetsConfig(out=tmp_path / "datasets", split_mode="time", test_fraction=0.1, dev_fraction=0.1)
    build(small_store, cfg, only=["tweets"], show_progress=False)
    ds = load_dataset(str(cfg.out / "tweets"))
    newest: dict[str, dict[int, Any]] = {}
    for split in ds:
        for row in ds[split]:
            trees = newest.setdefault(split, {})
            trees[row["conversation_id"]] = max(
                trees.get(row["conversation_id"], row["created_at"]), row["created_at"]
            )
    # a tree's split follows its newest tweet: every train tree ends before every dev tree, dev before test
    assert max(newest["train"].values()) <= min(newest["dev"].values())
    assert max(newest["dev"].values()) <= min(newest["test"].values())
    share = len(newest["test"]) / sum(len(v) for v in newest.values())
    assert 0.08 < share < 0.12


def test_bad_input_is_counted_not_fatal(tmp_path: Path) -> None:
    docs = {
        "alice": archive(
            account_id=ALICE,
            username="alice",
            tweets=[
                tweet(1, "root"),
                tweet(2, "replies to itself", reply_to=tid(2), reply_user=ALICE),
                reply(3, "@bob", 5, BOB, "bob"),  # empty once the mention is dropped; its parent is newer
                tweet(6, "absurd", likes="-5", rts="99999999999"),
            ],
        ),
        "bob": archive(account_id=BOB, username="bob", tweets=[reply(5, "@alice hi", 1, ALICE, "alice")]),
    }
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest_files(
        store,
        [write(tmp_path / f"{k}.json", v) for k, v in docs.items()],
        kind="archive",
        workers=1,
        show_progress=False,
    )
    report = build(store, config(tmp_path), show_progress=False)
    assert report.skipped["tweet replies to itself (made a root)"] == 1
    assert report.skipped["parent is newer than the reply (made a root)"] == 1
    assert report.skipped["tweet with no text left after rendering (left out)"] == 1
    assert report.skipped["absurd like count (treated as unknown)"] == 1
    assert report.skipped["absurd retweet count (treated as unknown)"] == 1
    assert report.trees == 4  # 1 (with bob's reply), 2 and 3 made roots, 6


def test_reply_to_a_deleted_tweet_starts_a_marked_tree(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    first = archive(
        account_id=ALICE,
        username="alice",
        tweets=[tweet(1, "later deleted"), tweet(2, "kept")],
        start=0,
        end=5,
    )
    later = archive(account_id=ALICE, username="alice", tweets=[tweet(2, "kept")], start=0, end=9)
    bob = archive(
        account_id=BOB,
        username="bob",
        tweets=[reply(3, "@alice what?", 1, ALICE, "alice"), reply(4, "@alice and this", 2, ALICE, "alice")],
    )
    for name, doc in (("a1", first), ("a2", later), ("b", bob)):
        ingest_files(
            store, [write(tmp_path / f"{name}.json", doc)], kind="archive", workers=1, show_progress=False
        )
    report = build(store, config(tmp_path), only=["tweets"], show_progress=False)
    rows = {r["tweet_id"]: r for r in load(tmp_path / "datasets", "tweets")}
    assert tid(1) not in rows  # deleted tweets are not data
    assert rows[tid(3)]["parent_missing"] and rows[tid(3)]["conversation_id"] == tid(3)
    assert rows[tid(4)]["conversation_id"] == tid(2) and not rows[tid(4)]["parent_missing"]
    assert report.trees_parent_missing == 1


def test_real_samples_build(shared_data: Path, tmp_path: Path) -> None:
    ca = shared_data / "community-archive" / "archive-json"
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest_files(store, sorted(ca.glob("*.archive.json")), kind="archive", workers=1, show_progress=False)
    cfg = DatasetsConfig(out=tmp_path / "datasets", personas=["alrocar"])
    report = build(store, cfg, show_progress=False)
    # 1218 + 335 + 7 tweets, minus alrocar's 12 retweets
    assert report.tweets == 1548
    # The samples' owners never reply to each other: alrocar's replies go to tweets outside the archive,
    # and his threads have no second speaker, so he has no conversation to learn from; the build says so.
    assert report.datasets["chatml-persona"].stats == {"examples": 0}
    assert not (cfg.out / "chatml-persona" / "data").exists()
    tweets = load(cfg.out, "tweets")
    assert len(tweets) == 1548
    assert sum(1 for t in tweets if t["parent_missing"]) == report.trees_parent_missing


def test_build_and_report_commands(small_store: Store, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    out = tmp_path / "datasets"
    top = (
        small_store.connect()
        .execute("SELECT username FROM tweets GROUP BY 1 ORDER BY count(*) DESC LIMIT 2")
        .fetchall()
    )
    result = runner.invoke(
        app,
        [
            "--store",
            str(small_store.root),
            "build",
            "--out",
            str(out),
            "--persona",
            top[0][0],
            "--gold",
            top[1][0],
            "--only",
            "chatml,prefs",
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {
        "chatml-two-party",
        "chatml-multi-party",
        "chatml-persona",
        "prefs",
        "scores",
        "build-stats.json",
    }
    assert "gold pairs" in result.output
    result = runner.invoke(app, ["report", "--datasets", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 4 and "Quality score distributions" in page and "chatml-persona" in page
    result = runner.invoke(
        app, ["--store", str(small_store.root), "build", "--out", str(out), "--persona", "nobody"]
    )
    assert result.exit_code == 2 and "persona(s) not in the store: nobody" in result.output
    result = runner.invoke(app, ["report", "--datasets", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "run `personas build` first" in result.output


def test_one_build_per_folder_and_leftovers_are_swept(small_store: Store, tmp_path: Path) -> None:
    from pipeline.store import StoreBusyError
    from pipeline.store.atomic import exclusive_lock

    out = tmp_path / "datasets"
    (out / ".build-deadbeef" / "part-0").mkdir(parents=True)
    (out / ".prefs.1234abcd.tmp" / "data").mkdir(parents=True)
    cfg = DatasetsConfig(out=out)
    with exclusive_lock(out / ".lock"), pytest.raises(StoreBusyError, match="this datasets folder"):
        build(small_store, cfg, only=["prefs"], show_progress=False)
    build(small_store, cfg, only=["prefs"], show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "build-stats.json", "prefs", "scores"]
