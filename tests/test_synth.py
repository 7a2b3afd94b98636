"""The synthetic corpus: deterministic, realistic in structure, and in the real archive.json format."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import orjson

from pipeline.store import Store
from pipeline.synth.generator import KIND_NAMES, Plan, SynthSpec, SynthSummary, generate_corpus


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.archive.json")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    spec = SynthSpec(accounts=6, tweets=1500, seed=42)
    generate_corpus(spec, tmp_path / "a", workers=1)
    generate_corpus(spec, tmp_path / "b", workers=2)
    generate_corpus(SynthSpec(accounts=6, tweets=1500, seed=43), tmp_path / "c", workers=1)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_files_have_the_archive_json_shape(small_corpus: SynthSummary) -> None:
    doc = orjson.loads(small_corpus.files[0].read_bytes())
    assert set(doc) == {
        "upload-options",
        "account",
        "profile",
        "tweets",
        "community-tweet",
        "note-tweet",
        "like",
        "follower",
        "following",
    }
    t = doc["tweets"][0]["tweet"]
    always = {
        "edit_info",
        "retweeted",
        "source",
        "entities",
        "display_text_range",
        "favorite_count",
        "id_str",
        "id",
        "truncated",
        "retweet_count",
        "created_at",
        "favorited",
        "full_text",
        "lang",
    }
    assert always <= set(t)
    assert isinstance(t["favorite_count"], str) and isinstance(t["id_str"], str)
    assert t["created_at"][3] == " " and t["created_at"].endswith(
        ("2019", "2020", "2021", "2022", "2023", "2024")
    )
    replies = [i["tweet"] for i in doc["tweets"] if "in_reply_to_status_id_str" in i["tweet"]]
    assert replies and all(
        "in_reply_to_status_id_str" not in i["tweet"]
        for i in doc["tweets"]
        if i["tweet"]["full_text"].startswith("RT @")
    )
    escaped = [
        i["tweet"]["full_text"]
        for i in doc["tweets"]
        if "&amp;" in i["tweet"]["full_text"] or "&lt;" in i["tweet"]["full_text"]
    ]
    assert escaped, "texts are HTML-escaped like real archives"


def test_structure_is_realistic(small_corpus: SynthSummary, small_store: Store) -> None:
    assert all(small_corpus.kinds[k] > 0 for k in KIND_NAMES)
    con = small_store.connect()
    # cross-account reply trees with branches and depth
    cross = con.execute(
        "SELECT count(*) FROM tweets c JOIN tweets p ON c.reply_to_tweet_id = p.tweet_id WHERE c.account_id <> p.account_id"
    ).fetchone()[0]
    assert cross > 500
    branching = con.execute(
        "SELECT max(n) FROM (SELECT reply_to_tweet_id, count(*) n FROM tweets WHERE reply_to_tweet_id IS NOT NULL GROUP BY 1)"
    ).fetchone()[0]
    assert branching >= 5
    depth = con.execute(
        """WITH RECURSIVE chain(tweet_id, depth) AS (
               SELECT tweet_id, 0 FROM tweets WHERE reply_to_tweet_id IS NULL
               UNION ALL
               SELECT t.tweet_id, c.depth + 1 FROM tweets t JOIN chain c ON t.reply_to_tweet_id = c.tweet_id)
           SELECT max(depth) FROM chain"""
    ).fetchone()[0]
    assert depth >= 6
    missing_parent = con.execute(
        "SELECT count(*) FROM tweets t ANTI JOIN tweets p ON t.reply_to_tweet_id = p.tweet_id WHERE t.reply_to_tweet_id IS NOT NULL"
    ).fetchone()[0]
    assert missing_parent >= small_corpus.kinds["reply_external"]
    # parents precede their replies
    assert (
        con.execute(
            "SELECT count(*) FROM tweets c JOIN tweets p ON c.reply_to_tweet_id = p.tweet_id WHERE c.created_at <= p.created_at"
        ).fetchone()[0]
        == 0
    )
    # heavy-tailed likes and activity
    likes = np.array(
        [r[0] for r in con.execute("SELECT favorite_count FROM tweets WHERE NOT is_retweet").fetchall()]
    )
    assert likes.max() > 50 * max(np.median(likes), 1)
    per_account = sorted(
        (r[0] for r in con.execute("SELECT count(*) FROM tweets GROUP BY account_id").fetchall()),
        reverse=True,
    )
    assert per_account[0] > 3 * per_account[len(per_account) // 2]
    # self-threads: replies to oneself, posted minutes apart
    gaps = con.execute(
        """SELECT epoch(c.created_at - p.created_at) FROM tweets c JOIN tweets p ON c.reply_to_tweet_id = p.tweet_id
           WHERE c.account_id = p.account_id"""
    ).fetchall()
    assert gaps and np.median([g[0] for g in gaps]) < 3600
    assert (
        con.execute("SELECT count(*) FROM tweets WHERE is_note AND length(full_text) > 280").fetchone()[0] > 0
    )
    assert con.execute("SELECT count(DISTINCT media_type) FROM media").fetchone()[0] == 3


def test_plan_is_cheap_and_texts_vary_by_account() -> None:
    plan = Plan(SynthSpec(accounts=10, tweets=3000, seed=5))
    assert len(plan.texts) == 3000 and all(plan.texts)
    by_author: dict[int, Counter[str]] = {}
    for author, text in zip(plan.author.tolist(), plan.texts, strict=True):
        by_author.setdefault(author, Counter()).update(text.lower().split())
    tops = {a: {w for w, _ in c.most_common(60)} for a, c in by_author.items() if sum(c.values()) > 500}
    pairs = [(a, b) for a in tops for b in tops if a < b]
    overlaps = [len(tops[a] & tops[b]) / 60 for a, b in pairs]
    assert min(overlaps) < 0.9  # accounts talk about different things
