"""The canonical store: ingest counts, idempotence, snapshot merging, deletions, atomicity, conflicts."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipeline.ingest import ingest_files
from pipeline.store import Store, StoreBusyError
from pipeline.store.atomic import exclusive_lock
from pipeline.synth.generator import SynthSpec, SynthSummary, generate_corpus
from tests.support.archives import archive, tid, tweet, write


def ingest(store: Store, *paths: Path, workers: int = 1, **kwargs: Any) -> Any:
    return ingest_files(store, list(paths), kind="archive", workers=workers, show_progress=False, **kwargs)


def table(store: Store, name: str, order: str = "tweet_id") -> list[dict[str, Any]]:
    con = store.connect()
    try:
        return con.sql(f"SELECT * FROM {name} ORDER BY {order}").to_arrow_table().to_pylist()
    finally:
        con.close()


def scalar(store: Store, sql: str) -> Any:
    con = store.connect()
    try:
        row = con.execute(sql).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def test_synthetic_corpus_counts(small_corpus: SynthSummary, small_store: Store) -> None:
    kinds = small_corpus.kinds
    assert scalar(small_store, "SELECT count(*) FROM tweets") == small_corpus.tweets - kinds["edit"]
    assert scalar(small_store, "SELECT count(*) FROM tweets WHERE is_retweet") == kinds["retweet"]
    assert scalar(small_store, "SELECT count(*) FROM quotes") == kinds["quote"]
    assert scalar(small_store, "SELECT count(*) FROM tweets WHERE reply_to_tweet_id IS NOT NULL") == (
        kinds["reply"] + kinds["reply_external"] + kinds["self_thread"]
    )
    assert (
        scalar(small_store, "SELECT count(*) FROM tweets WHERE community_id IS NOT NULL")
        == small_corpus.community
    )
    assert scalar(small_store, "SELECT count(*) FROM accounts") == small_corpus.spec.accounts
    assert scalar(small_store, "SELECT count(DISTINCT tweet_id) = count(*) FROM tweets")
    run = small_store.read_manifest().history[-1]
    assert run.report.counts["notes_merged"] == small_corpus.notes
    assert run.report.counts["notes_unmatched"] == 0
    assert run.report.counts["edits_superseded"] == kinds["edit"]
    assert not run.report.skipped and not run.report.coerced


def test_reingest_is_idempotent(small_corpus: SynthSummary, store: Store) -> None:
    files = small_corpus.files[:4]
    ingest(store, *files)
    first = {
        name: table(store, name, order)
        for name, order in (
            ("tweets", "tweet_id"),
            ("media", "tweet_id, position"),
            ("likes", "account_id, tweet_id"),
        )
    }
    versions = {e.path for e in store.read_manifest().accounts.values()}
    again = ingest(store, *files)  # identical bytes: skipped unread
    assert sorted(again.unchanged) == sorted(map(str, files)) and not again.accounts
    assert {e.path for e in store.read_manifest().accounts.values()} == versions
    forced = ingest(store, *reversed(files), force=True)  # merged for real: still the same rows
    assert len(forced.accounts) == 4 and not forced.unchanged
    for name, order in (
        ("tweets", "tweet_id"),
        ("media", "tweet_id, position"),
        ("likes", "account_id, tweet_id"),
    ):
        assert table(store, name, order) == first[name]
    entries = store.read_manifest().accounts.values()
    assert all(len(e.snapshots) == 1 for e in entries)


def _versions(tmp_path: Path) -> tuple[Path, Path]:
    old = archive(
        tweets=[
            tweet(1, "kept", likes="1"),
            tweet(2, "edited later", likes="1"),
            tweet(3, "deleted later", likes="9"),
        ],
        likes=[{"like": {"tweetId": "50"}}],
        start=0,
        end=10,
    )
    new = archive(
        username="alice_renamed",
        tweets=[
            tweet(1, "kept", likes="5"),
            tweet(2, "edited later", likes="2"),
            tweet(20, "new one", likes="0"),
        ],
        likes=[],
        start=0,
        end=30,
        upload_likes=False,
    )
    return write(tmp_path / "old.json", old), write(tmp_path / "new.json", new)


@pytest.mark.parametrize("order", ["old-then-new", "new-then-old"])
def test_newer_snapshot_wins_and_deletions_are_flagged(tmp_path: Path, order: str) -> None:
    old, new = _versions(tmp_path)
    store = Store(tmp_path / "store", gc_grace_s=0)
    for path in (old, new) if order == "old-then-new" else (new, old):
        ingest(store, path)
    rows = {r["tweet_id"]: r for r in table(store, "tweets")}
    assert set(rows) == {tid(1), tid(2), tid(3), tid(20)}
    assert rows[tid(1)]["favorite_count"] == 5 and rows[tid(2)]["favorite_count"] == 2  # newest counts win
    assert rows[tid(3)]["deleted"] and rows[tid(3)]["favorite_count"] == 9  # kept, flagged
    assert not any(rows[t]["deleted"] for t in (tid(1), tid(2), tid(20)))
    assert [r["username"] for r in table(store, "accounts", "account_id")] == ["alice_renamed"]
    # the newer upload withheld likes: the older snapshot's likes survive
    assert [r["tweet_id"] for r in table(store, "likes")] == [50]
    assert scalar(store, "SELECT count(*) FROM tweets WHERE NOT deleted") == 3


def test_absence_outside_a_newer_uploads_date_range_is_not_deletion(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(
        store,
        write(tmp_path / "a.json", archive(tweets=[tweet(1, "early"), tweet(8, "later")], start=0, end=10)),
    )
    # The newer upload chose a date range starting after tweet 1 (upload-options), so it lacks it.
    ingest(
        store,
        write(tmp_path / "b.json", archive(tweets=[tweet(8, "later"), tweet(12, "new")], start=5, end=15)),
    )
    rows = {r["tweet_id"]: r["deleted"] for r in table(store, "tweets")}
    assert rows == {tid(1): False, tid(8): False, tid(12): False}


def test_reappearing_tweet_is_live_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(store, write(tmp_path / "a.json", archive(tweets=[tweet(1, "a"), tweet(2, "b")], start=0, end=10)))
    ingest(store, write(tmp_path / "b.json", archive(tweets=[tweet(1, "a")], start=0, end=20)))
    assert {r["tweet_id"]: r["deleted"] for r in table(store, "tweets")}[tid(2)]
    ingest(store, write(tmp_path / "c.json", archive(tweets=[tweet(1, "a"), tweet(2, "b")], start=0, end=30)))
    assert not any(r["deleted"] for r in table(store, "tweets"))


def test_edit_in_a_later_snapshot_replaces_the_first_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(store, write(tmp_path / "a.json", archive(tweets=[tweet(1, "typo")], start=0, end=1)))
    v1, v2 = tid(1), tid(2)
    later = archive(
        tweets=[tweet(1, "typo", edit_ids=[v1, v2]), tweet(2, "fixed", edit_of=v1)], start=0, end=5
    )
    ingest(store, write(tmp_path / "b.json", later))
    assert [(r["tweet_id"], r["full_text"], r["deleted"]) for r in table(store, "tweets")] == [
        (v2, "fixed", False)
    ]
    assert [(r["tweet_id"], r["final_tweet_id"]) for r in table(store, "edits")] == [(v1, v2)]


def test_duplicate_ids_across_accounts_keep_what_the_store_held(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(store, write(tmp_path / "a.json", archive(tweets=[tweet(1, "alice's"), tweet(2, "also alice's")])))
    forged = archive(
        account_id="2000", username="mallory", tweets=[tweet(1, "claims alice's id"), tweet(3, "mallory's")]
    )
    result = ingest(store, write(tmp_path / "m.json", forged))
    rows = {r["tweet_id"]: (r["username"], r["full_text"]) for r in table(store, "tweets")}
    assert rows == {
        tid(1): ("alice", "alice's"),
        tid(2): ("alice", "also alice's"),
        tid(3): ("mallory", "mallory's"),
    }
    assert result.report.skipped == {"tweet id already stored under another account": 1}


def test_bad_files_are_skipped_and_the_store_is_untouched(small_corpus: SynthSummary, tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(store, *small_corpus.files[:3])
    before = table(store, "tweets")
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(small_corpus.files[0].read_bytes()[:5000])
    other = write(tmp_path / "other.json", {"hello": "world"})
    result = ingest(store, truncated, other)
    assert set(result.failed) == {str(truncated), str(other)}
    assert "invalid JSON" in result.failed[str(truncated)] and "not an archive" in result.failed[str(other)]
    assert table(store, "tweets") == before
    assert store.read_manifest().history[-1].failed_inputs == result.failed


def test_a_failure_midway_leaves_the_previous_state(
    small_corpus: SynthSummary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    ingest(store, *small_corpus.files[:2])
    before = (store.read_manifest().model_dump(exclude={"history"}), table(store, "tweets"))

    import pipeline.store.store as store_module

    def exploding_merge(*args: Any, **kwargs: Any) -> Any:
        out_dir: Path = kwargs["out_dir"]
        out_dir.mkdir(parents=True)
        (out_dir / "tweets.parquet").write_bytes(b"PAR1 half written")
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "merge_versions", exploding_merge)
    with pytest.raises(OSError):
        ingest(store, small_corpus.files[0], commit_every_s=1e9, force=True)
    monkeypatch.undo()
    # The failed transaction committed nothing new; the half-written directory is not referenced.
    after = store.read_manifest().model_dump(exclude={"history"})
    assert after["accounts"] == before[0]["accounts"]
    assert table(store, "tweets") == before[1]
    ingest(store, small_corpus.files[2])  # the next writer sweeps the orphan
    versions = {p.relative_to(store.root).as_posix() for p in (store.root / "accounts").glob("*/*")}
    assert versions == {e.path for e in store.read_manifest().accounts.values()}


def test_one_writer_at_a_time(store: Store) -> None:
    store.root.mkdir(parents=True)
    with (
        exclusive_lock(store.root / ".lock"),
        pytest.raises(StoreBusyError),
        exclusive_lock(store.root / ".lock", blocking=False),
    ):
        pass


def test_superseded_versions_are_collected(small_corpus: SynthSummary, tmp_path: Path) -> None:
    store = Store(tmp_path / "store", gc_grace_s=0)
    for _ in range(3):
        ingest(store, small_corpus.files[0], force=True)
    dirs = list((store.root / "accounts").glob("*/*"))
    assert len(dirs) <= 2  # the current version, and at most one retired in the last commit
    assert all(pq.read_table(p / "tweets.parquet").num_rows for p in dirs if (p / "tweets.parquet").exists())


KILL_SCRIPT = """
import sys
from pathlib import Path
from pipeline.ingest import ingest_files
from pipeline.store import Store
files = [Path(p) for p in sys.argv[2:]]
print("started", flush=True)
ingest_files(Store(sys.argv[1], gc_grace_s=0), files, kind="archive", workers=1, commit_every_s=0.0,
             show_progress=False, force=True)
"""


@pytest.mark.slow
def test_sigkill_during_ingest_never_leaves_a_half_written_store(tmp_path: Path) -> None:
    corpus = generate_corpus(SynthSpec(accounts=30, tweets=30_000, seed=3), tmp_path / "corpus", workers=1)
    files = [str(p) for p in corpus.files]
    clean = Store(tmp_path / "clean", gc_grace_s=0)
    ingest(clean, *corpus.files)
    expected = {r["account_id"]: r["n"] for r in _per_account(clean)}
    rng = random.Random(11)
    for attempt in range(3):
        root = tmp_path / f"store{attempt}"
        ingest(Store(root, gc_grace_s=0), *corpus.files[:10])
        baseline = {r["account_id"] for r in _per_account(Store(root))}
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT, str(root), *files],
            cwd=os.getcwd(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.2, 1.5))
        assert proc.poll() is None, "the ingest finished before the kill: make the corpus bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store(root, gc_grace_s=0)
        seen = {r["account_id"]: r["n"] for r in _per_account(store)}  # every referenced file reads back
        assert set(seen) >= baseline
        for account, n in seen.items():
            assert n == expected[account], "an account holds a partial set of tweets"
        ingest(store, *corpus.files)  # resumes cleanly, sweeping what the killed writer left
        assert {r["account_id"]: r["n"] for r in _per_account(store)} == expected
        shutil.rmtree(root)


def _per_account(store: Store) -> list[dict[str, Any]]:
    con = store.connect()
    try:
        return con.sql("SELECT account_id, count(*) AS n FROM tweets GROUP BY 1").to_arrow_table().to_pylist()
    finally:
        con.close()


def test_replies_to_missing_parents_are_kept_and_counted(tmp_path: Path) -> None:
    from pipeline.stats import store_stats

    store = Store(tmp_path / "store", gc_grace_s=0)
    doc = archive(
        tweets=[
            tweet(1, "root"),
            tweet(2, "@alice reply in store", reply_to=tid(1), reply_user="1000", reply_name="alice"),
            tweet(3, "@ghost reply to a tweet nobody archived", reply_to=123456789, reply_user="5"),
        ]
    )
    ingest(store, write(tmp_path / "a.json", doc))
    stats = store_stats(store)
    assert (stats.replies, stats.replies_parent_in_store, stats.self_replies) == (2, 1, 1)
