"""Hydration of a real store: images with exact file names and metadata, the CLI, and article text in ChatML."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.cli.datasets import references_for
from pipeline.config import DatasetsConfig, HydrateConfig, Settings
from pipeline.datasets.build import build
from pipeline.datasets.report import write_report
from pipeline.hydrate import hydration_stats, image_files
from pipeline.hydrate.articles import linked_urls
from pipeline.hydrate.images import hydrate_images, media_items
from pipeline.ingest import ingest_files
from pipeline.store import Store
from tests.support.archives import archive, tid, tweet, url, write
from tests.support.web import Web, serve

pytestmark = pytest.mark.network_loopback

ALICE, BOB = "1000", "2000"


def media(media_id: int, media_url: str) -> dict[str, Any]:
    return {
        "id_str": str(media_id),
        "id": str(media_id),
        "media_url_https": media_url,
        "media_url": media_url,
        "type": "photo",
        "url": "https://t.co/media",
        "expanded_url": f"https://twitter.com/alice/status/{media_id}/photo/1",
    }


def photos(k: int, *urls: str) -> dict[str, Any]:
    items = [media(k * 10 + i, u) for i, u in enumerate(urls)]
    return {"media": items[:1], "ext_media": items}


@pytest.fixture(scope="module")
def web() -> Iterator[Web]:
    with serve() as running:
        yield running


@pytest.fixture(scope="module")
def store(web: Web, tmp_path_factory: pytest.TempPathFactory) -> Store:
    img = f"http://img.test:{web.port}"
    blog = f"http://blog.test:{web.port}"
    alice = archive(
        account_id=ALICE,
        username="alice",
        tweets=[
            tweet(
                1,
                "a good read on attention https://t.co/a1 https://t.co/m1",
                urls=[url(f"{blog}/article/attention", "https://t.co/a1")],
                **photos(1, f"{img}/img/a.jpg"),
            ),
            tweet(
                3,
                "files with hostile names https://t.co/m3",
                **photos(3, f"{img}/img/../../x.sh", f"{img}/img/shell.php"),
            ),
            tweet(
                4,
                "broken pictures but the words stay https://t.co/m4",
                **photos(
                    4,
                    f"{img}/img/fake.jpg?real=none",
                    f"{img}/img/liar.jpg?real=none&ct=image/jpeg",
                    f"{img}/status/404",
                    "http://169.254.169.254/latest/pic.jpg",
                ),
            ),
            tweet(
                5,
                "quoting myself https://t.co/q5 and a pdf https://t.co/p5",
                urls=[
                    url(f"https://twitter.com/alice/status/{tid(1)}", "https://t.co/q5"),
                    url(f"{blog}/doc.pdf", "https://t.co/p5"),
                ],
            ),
        ],
    )
    bob = archive(
        account_id=BOB,
        username="bob",
        tweets=[
            tweet(
                2,
                "@alice here are my notes https://t.co/m2",
                reply_to=tid(1),
                reply_user=ALICE,
                reply_name="alice",
                **photos(2, f"{img}/img/b.png", f"{img}/img/c.gif", f"{img}/img/d.webp"),
            )
        ],
    )
    folder = tmp_path_factory.mktemp("hydrate-store")
    store = Store(folder / "store", gc_grace_s=0)
    files = [write(folder / f"{n}.json", d) for n, d in (("alice", alice), ("bob", bob))]
    result = ingest_files(store, files, kind="archive", workers=1, show_progress=False)
    assert not result.failed
    return store


def hydrate_config(root: Path) -> HydrateConfig:
    return HydrateConfig(
        dir=root,
        hosts={"blog.test": "127.0.0.1", "img.test": "127.0.0.1"},
        allow_networks=["127.0.0.1/32"],
        extract_workers=-1,
        host_interval_s=0.0,
        total_timeout_s=2.0,
    )


def test_linked_urls_skip_links_to_tweets(store: Store, web: Web) -> None:
    assert linked_urls(store) == [
        f"http://blog.test:{web.port}/article/attention",
        f"http://blog.test:{web.port}/doc.pdf",
    ]


def test_images_exact_names_metadata_and_failures(store: Store, web: Web, tmp_path: Path) -> None:
    config = hydrate_config(tmp_path / "h")
    items = media_items(store)
    assert len(items) == 10
    run = hydrate_images(items, config)
    files = tmp_path / "h" / "images" / "files"
    t1, t2, t3, t4 = tid(1), tid(2), tid(3), tid(4)
    expected = {
        f"{t1}_0.jpg",
        f"{t2}_0.png",
        f"{t2}_1.gif",
        f"{t2}_2.webp",
        f"{t3}_0.png",  # the URL ended in ../../x.sh
        f"{t3}_1.png",  # the URL ended in .php
    }
    assert {p.name for p in files.iterdir()} == expected
    every_file = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert every_file == {f"h/images/files/{n}" for n in expected} | {
        "h/images/records.jsonl",
        "h/images/metadata.parquet",
        "h/images/.lock",
    }
    assert (files / f"{t2}_1.gif").read_bytes() == web.images["gif"]
    assert (run.ok, run.fetched, run.bytes) == (6, 10, sum((files / n).stat().st_size for n in expected))
    assert run.failures == {"content_type": 1, "not_an_image": 1, "http_404": 1, "blocked_address": 1}

    table = image_files(tmp_path / "h").to_pylist()
    rows = {(r["tweet_id"], r["image_index"]): r for r in table}
    assert len(rows) == 10
    reply = rows[(t2, 1)]
    assert reply["file_name"] == f"{t2}_1.gif" and reply["author"] == "bob"
    assert reply["conversation_id"] == t1  # the reply tree's root
    assert reply["content_type"] == "image/gif" and reply["status"] == 200
    assert reply["created_at"].isoformat().startswith("2023-11-14T")
    assert rows[(t4, 2)]["file_name"] is None and rows[(t4, 2)]["reason"] == "http_404"
    assert rows[(t1, 0)]["conversation_id"] == t1 and rows[(t3, 0)]["conversation_id"] == t3

    again = hydrate_images(media_items(store), config)
    assert (again.fetched, again.cached) == (0, 10)

    stats = hydration_stats(tmp_path / "h")
    assert (stats.images_total, stats.images_ok) == (10, 6)
    assert stats.image_failures == run.failures


def test_cli_hydrate_then_build_puts_articles_in_chatml(store: Store, web: Web, tmp_path: Path) -> None:
    root = tmp_path / "h"
    env = {
        **os.environ,
        "PERSONAS_HYDRATE__DIR": str(root),
        "PERSONAS_HYDRATE__HOSTS": json.dumps({"blog.test": "127.0.0.1", "img.test": "127.0.0.1"}),
        "PERSONAS_HYDRATE__ALLOW_NETWORKS": '["127.0.0.1/32"]',
        "PERSONAS_HYDRATE__EXTRACT_WORKERS": "-1",
        "PERSONAS_HYDRATE__HOST_INTERVAL_S": "0",
        "COLUMNS": "160",
    }
    runner = CliRunner()
    result = runner.invoke(app, ["--store", str(store.root), "hydrate", "urls", "--limit", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert "left for the next run (--limit)" in result.output
    result = runner.invoke(
        app, ["--store", str(store.root), "hydrate", "urls", "--concurrency", "4"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "content_type" in result.output  # the PDF, skipped
    result = runner.invoke(app, ["--store", str(store.root), "hydrate", "images"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["hydrate", "stats", "--json"], env=env)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert (stats["urls_total"], stats["urls_ok"], stats["url_failures"]) == (2, 1, {"content_type": 1})
    assert (stats["images_total"], stats["images_ok"]) == (10, 6)

    settings = Settings(hydrate=HydrateConfig(dir=root), datasets=DatasetsConfig(ref_max_words=8))
    references, reference_stats = references_for(settings)
    assert reference_stats is not None and reference_stats["urls_ok"] == 1
    out = tmp_path / "datasets"
    config = DatasetsConfig(out=out, quality_chunk=1, split_ratios={"train": 1.0}, workers=1)
    build(store, config, only=["chatml-two-party"], references=references, reference_stats=reference_stats)

    # Parquet read directly: load_dataset's cache can answer for an earlier folder at the same path
    shards = sorted((out / "chatml-two-party").rglob("*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    contents = [m["content"] for row in rows for m in row["messages"]]
    article = f"http://blog.test:{web.port}/article/attention"
    with_ref = [c for c in contents if f'<ref url="{article}">' in c]
    assert with_ref, (article, contents)
    inner = with_ref[0].split(f'<ref url="{article}">', 1)[1].split("</ref>", 1)[0]
    assert inner.endswith(" …") and len(inner.split(" ")) == 9 and "Attention" in inner
    assert any("here are my notes [image]" in c for c in contents)  # images stay placeholders

    card = (out / "chatml-two-party" / "README.md").read_text()
    assert "| hydration: urls_ok | 1 |" in card and "hydration: images_ok" in card
    page = write_report(out).read_text()
    assert "<h2>Hydration</h2>" in page and "url_success_rate" in page


def test_no_hydration_keeps_placeholders(tmp_path: Path) -> None:
    references, stats = references_for(Settings(hydrate=HydrateConfig(dir=tmp_path / "none")))
    assert stats is None and references.lookup(["https://blog.example/x"]) == {}
