"""Persona files from the store: examples by quality, real reply pairs, distinctive topics,
measured style; polishing through the inference client; the real samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.inference import ChatClient, InferenceConfig
from pipeline.ingest import ingest_files
from pipeline.persona import (
    Persona,
    PersonaError,
    PersonaSpec,
    _quality,
    build_persona,
    measure_style,
    polish_persona,
    system_prompt,
)
from pipeline.store import Store
from tests.support.openai_server import OpenAIStandIn, serve_openai


@pytest.fixture(scope="module")
def most_active(small_store: Store) -> str:
    row = (
        small_store.connect()
        .execute("SELECT username FROM tweets GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        .fetchone()
    )
    assert row is not None
    return str(row[0])


def test_persona_from_the_store(small_store: Store, most_active: str, tmp_path: Path) -> None:
    persona, stats = build_persona(small_store, most_active, PersonaSpec(posts=6, messages=5, topics=8))
    con = small_store.connect()
    account_id = stats["account_id"]
    mine = {
        r[0]: r[1]
        for r in con.execute(
            "SELECT tweet_id, full_text FROM tweets WHERE account_id = ? AND NOT is_retweet", [account_id]
        ).fetchall()
    }
    texts = "\n".join(mine.values())
    assert len(persona.postExamples) == 6 and len(persona.messageExamples) == 5
    assert all(p in texts for p in persona.postExamples)

    # Examples are the account's best by the shared quality score: above its median.
    quality = _quality(small_store, PersonaSpec().weights)
    by_text = {t: quality[i] for i, t in mine.items()}
    chosen = [q for t, q in by_text.items() if any(p in t for p in persona.postExamples)]
    all_q = sorted(q for q in by_text.values() if q == q)
    assert min(chosen) >= all_q[len(all_q) // 2]

    # messageExamples are real pairs: another account's tweet, then this account's reply to it.
    for pair in persona.messageExamples:
        assert [m["user"] for m in pair] == ["{{user1}}", persona.name]
        parent, reply = pair[0]["content"]["text"], pair[1]["content"]["text"]
        hit = con.execute(
            """SELECT count(*) FROM tweets r JOIN tweets p ON p.tweet_id = r.reply_to_tweet_id
               WHERE r.account_id = ? AND p.account_id <> ? AND contains(r.full_text, ?) AND contains(p.full_text, ?)""",
            [account_id, account_id, reply, parent],
        ).fetchone()
        assert hit is not None and hit[0] >= 1

    # Topics are frequent in the account and more frequent there than in the rest of the community.
    term = next(t for t in persona.topics if not t.startswith("#"))
    share_mine = con.execute(
        "SELECT avg(contains(lower(full_text), ?)::INT) FROM tweets WHERE account_id = ?", [term, account_id]
    ).fetchone()
    share_rest = con.execute(
        "SELECT avg(contains(lower(full_text), ?)::INT) FROM tweets WHERE account_id <> ?", [term, account_id]
    ).fetchone()
    assert share_mine is not None and share_rest is not None
    assert share_mine[0] > 2 * share_rest[0]

    # Style states what was measured.
    assert stats["tweets"] == stats["posts"] + stats["replies"] == len(mine)
    median = stats["style"]["all"]["median_chars"]
    assert f"typically writes about {round(median, -1):.0f} characters" in persona.style["all"]
    assert set(persona.style) == {"all", "chat", "post"} and persona.adjectives and persona.lore

    path = tmp_path / "p.json"
    persona.save(path)
    assert Persona.load(path) == persona
    assert set(json.loads(path.read_text())) == {
        "name", "bio", "lore", "adjectives", "topics", "style", "messageExamples", "postExamples"
    }  # fmt: skip
    prompt = system_prompt(persona)
    assert prompt.startswith(f"You are {persona.name}.") and persona.postExamples[0] in prompt


def test_measure_style_counts_habits() -> None:
    m = measure_style(["hello world 🔥", "what now?", "Big News! https://x.co/a", "ok..."])
    assert m["count"] == 4 and m["emoji_share"] == 0.25 and m["question_share"] == 0.25
    assert m["lowercase_share"] == 0.75 and m["link_share"] == 0.25 and m["ellipsis_share"] == 0.25


def test_unknown_account_and_missing_store_are_clear_errors(small_store: Store, tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match=r"no account @nobody_here in the store \(some that are: "):
        build_persona(small_store, "nobody_here")
    with pytest.raises(PersonaError, match="no store"):
        build_persona(Store(tmp_path / "none"), "x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"bio": []}')
    with pytest.raises(ValueError, match="is not a persona file"):
        Persona.load(bad)


@pytest.mark.network_loopback
def test_polish_rewrites_bio_and_lore_or_keeps_the_statistics() -> None:
    persona = Persona(name="Ada", bio=["posts about math"], lore=["has posted 10 tweets"], topics=["math"])
    answers = [
        'Sure! {"bio": ["Ada writes about math."], "lore": ["Ada has posted ten times."]}',
        "no json here",
    ]
    with serve_openai(OpenAIStandIn(answers)) as server:
        client = ChatClient(InferenceConfig(base_url=server.base_url, model="tiny-base"))
        polished = polish_persona(persona, client)
        assert polished.bio == ["Ada writes about math."] and polished.lore == ["Ada has posted ten times."]
        assert polished.topics == persona.topics
        assert polish_persona(persona, client) == persona
        assert '"topics": ["math"]' in server.requests[0]["messages"][0]["content"]


def test_persona_from_a_real_archive(shared_data: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    archive = shared_data / "community-archive" / "archive-json" / "alrocar_2024-11.archive.json"
    result = ingest_files(store, [archive], kind="archive", workers=1, show_progress=False)
    assert not result.failed
    persona, stats = build_persona(store, "alrocar")
    assert stats["tweets"] > 100
    assert persona.postExamples and persona.topics and persona.style["all"]
    texts = "\n".join(r[0] for r in store.connect().execute("SELECT full_text FROM tweets").fetchall())
    assert all(p in texts for p in persona.postExamples)
