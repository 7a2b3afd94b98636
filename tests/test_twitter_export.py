"""The official X/Twitter export (zip or folder) gives the same records as archive.json."""

from __future__ import annotations

import zipfile
from pathlib import Path

import orjson
import pytest

from pipeline.sources.archive_json import load_archive_json
from pipeline.sources.base import AccountArchive, SourceError
from pipeline.sources.twitter_export import discover_exports, load_twitter_export
from pipeline.synth.generator import SynthSummary
from tests.support.archives import archive, tid, tweet, write_export

PROVENANCE = ("source", "snapshot_at")


def comparable(result: AccountArchive) -> dict[str, list[dict[str, object]]]:
    out = {}
    for name, table in result.tables.items():
        keep = [c for c in table.column_names if c not in PROVENANCE]
        out[name] = table.select(keep).to_pylist()
    return out


def test_export_folder_equals_archive_json(small_corpus: SynthSummary, tmp_path: Path) -> None:
    source = max(small_corpus.files, key=lambda p: p.stat().st_size)
    doc = orjson.loads(source.read_bytes())
    doc.pop(
        "upload-options"
    )  # an export has no upload options; the archive's dates then come from the tweets
    export = write_export(tmp_path / "export", doc, parts=3)
    as_json = tmp_path / "same.json"
    as_json.write_bytes(orjson.dumps(doc))
    from_export = load_twitter_export(export)
    from_json = load_archive_json(as_json)
    assert comparable(from_export) == comparable(from_json)
    assert from_export.report.counts == from_json.report.counts
    assert {t for t in from_export.tables["tweets"].column("source").to_pylist()} == {"twitter-export"}


def test_zip_with_a_top_folder_and_old_tweet_js(tmp_path: Path) -> None:
    doc = archive(tweets=[tweet(1, "one"), tweet(2, "two"), tweet(3, "three")])
    folder = write_export(tmp_path / "twitter-2024-11-01-abc", doc, tweets_name="tweet", parts=2)
    (folder / "Your archive.html").write_text("<html></html>")
    zpath = tmp_path / "twitter-2024-11-01.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for file in folder.rglob("*"):
            z.write(file, file.relative_to(tmp_path))
        z.writestr("twitter-2024-11-01-abc/data/tweets_media/ignored.js", "not a data file")
    result = load_twitter_export(zpath)
    assert [r["tweet_id"] for r in result.tables["tweets"].to_pylist()] == [tid(1), tid(2), tid(3)]
    assert discover_exports([tmp_path]) == sorted([folder, zpath])


def test_manifest_generation_date_is_the_snapshot_time(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "export", archive(tweets=[tweet(1, "x")]))
    (folder / "data" / "manifest.js").write_text(
        'window.__THAR_CONFIG = {"archiveInfo": {"generationDate": "2025-01-02T03:04:05.000Z"}}'
    )
    assert load_twitter_export(folder).snapshot.observed_at.isoformat() == "2025-01-02T03:04:05+00:00"


def test_bad_exports_are_clear_errors(tmp_path: Path) -> None:
    no_data = tmp_path / "no-data.zip"
    with zipfile.ZipFile(no_data, "w") as z:
        z.writestr("readme.txt", "hello")
    not_zip = tmp_path / "fake.zip"
    not_zip.write_text("just text")
    no_tweets = write_export(tmp_path / "no-tweets", archive(tweets=[tweet(1, "x")]))
    (no_tweets / "data" / "tweets.js").unlink()
    broken = write_export(tmp_path / "broken", archive(tweets=[tweet(1, "x")]))
    (broken / "data" / "tweets.js").write_text('window.YTD.tweets.part0 = [ {"tweet": ')
    cases = {
        no_data: "no data/ folder",
        not_zip: "neither a folder nor a zip",
        no_tweets: "no tweets.js",
        broken: "invalid JSON",
        tmp_path / "missing": "no such file",
    }
    for path, message in cases.items():
        with pytest.raises(SourceError) as info:
            load_twitter_export(path)
        assert message in str(info.value), (path, str(info.value))


def test_real_exports_match_their_archive_json(shared_data: Path) -> None:
    ca = shared_data / "community-archive"
    for name in ("exgenesis_mock", "ranigupta_20", "alrocar_2024-11"):
        from_export = comparable(load_twitter_export(ca / "twitter-export" / name))
        from_json = comparable(load_archive_json(ca / "archive-json" / f"{name}.archive.json"))
        # CA's uploader adds an empty `like` when the export had none; everything else is identical.
        from_json.pop("likes", None) if "likes" not in from_export else None
        assert from_export == from_json, name
