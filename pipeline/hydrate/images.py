"""`personas hydrate images`: download tweet media to `{tweet_id}_{image_index}.{extension}`.

    <root>/images/records.jsonl       one JSON line per media item (latest wins), with tweet id, image
                                      index, time, author, conversation id, file name, bytes, status
    <root>/images/files/123_0.jpg     the images
    <root>/images/metadata.parquet    the records as a table (also `image_files(root)`)

The file name is built from the two integers and an extension chosen by the file's own magic bytes
from jpg/png/gif/webp, never from the URL or the server's headers: a URL ending in `../../x.sh` or
`.php` cannot leave the folder or keep its extension, and a body that is not one of the four image
formats is not kept. Images are never decoded or rendered. A failed download is recorded with its
reason and the run goes on; the tweet keeps its text (ChatML shows the `[image]` placeholder).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import HydrateConfig
from pipeline.datasets.conversations import build_graph
from pipeline.hydrate.fetch import Fetcher, normalize_url, run_all
from pipeline.hydrate.guard import Resolver
from pipeline.hydrate.records import RecordLog, read_records
from pipeline.store import Store
from pipeline.store.atomic import atomic_write_bytes, exclusive_lock

IMAGES = "images"
FILES = "files"
RECORDS = "records.jsonl"

MEDIA_QUERY = """
SELECT m.tweet_id, m.position, m.media_type, m.media_url, t.created_at, t.username, t.account_id
FROM media m JOIN tweets t USING (tweet_id)
WHERE NOT t.deleted AND NOT t.is_retweet AND m.media_url IS NOT NULL
ORDER BY m.tweet_id, m.position
"""

IMAGE_TYPES = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}

SCHEMA = pa.schema(
    [
        ("tweet_id", pa.int64()),
        ("image_index", pa.int32()),
        ("file_name", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("author", pa.string()),
        ("account_id", pa.int64()),
        ("conversation_id", pa.int64()),
        ("media_type", pa.string()),
        ("media_url", pa.string()),
        ("bytes", pa.int64()),
        ("content_type", pa.string()),
        ("status", pa.int32()),
        ("reason", pa.string()),
    ]
)


def sniff_image(data: bytes) -> str | None:
    """The extension of an image by its magic bytes (jpg, png, gif, webp), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def image_file_name(tweet_id: int, image_index: int, extension: str) -> str:
    """`{tweet_id}_{image_index}.{extension}`; only integers and an allowed extension get in."""
    if extension not in IMAGE_TYPES:
        raise ValueError(f"not an allowed image extension: {extension!r}")
    return f"{int(tweet_id)}_{int(image_index)}.{extension}"


def _accept_image(content_type: str) -> bool:
    # Servers label images loosely; the magic bytes decide what is kept.
    return content_type.startswith("image/") or content_type in ("application/octet-stream", "")


@dataclass
class MediaItem:
    tweet_id: int
    image_index: int
    media_type: str
    media_url: str
    created_at: dt.datetime | None
    author: str | None
    account_id: int | None
    conversation_id: int | None


def media_items(store: Store) -> list[MediaItem]:
    """Media of live, non-retweet tweets, each with its conversation (reply-tree root) id."""
    con = store.connect()
    try:
        rows = con.sql(MEDIA_QUERY).fetchall()
        graph = build_graph(con) if rows else None
    finally:
        con.close()
    if not rows:
        return []
    assert graph is not None
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    where = graph.index_of(ids)
    roots = np.where(where >= 0, graph.ids[graph.root[np.maximum(where, 0)]], -1)
    return [
        MediaItem(
            tweet_id=int(r[0]),
            image_index=int(r[1]),
            media_type=r[2],
            media_url=r[3],
            created_at=r[4],
            author=r[5],
            account_id=r[6],
            conversation_id=int(root) if root >= 0 else None,
        )
        for r, root in zip(rows, roots, strict=True)
    ]


@dataclass
class ImageRun:
    items: int = 0
    cached: int = 0
    fetched: int = 0
    ok: int = 0
    bytes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    remaining: int = 0
    seconds: float = 0.0


def images_folder(root: Path) -> Path:
    return Path(root) / IMAGES


def _write_image(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if path.resolve().parent != folder.resolve():  # defence in depth; names are built from integers
        raise ValueError(f"image path escapes the images folder: {name!r}")
    fd, tmp = tempfile.mkstemp(prefix=".img.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def hydrate_images(
    items: list[MediaItem],
    config: HydrateConfig,
    *,
    limit: int | None = None,
    retry_failed: bool = False,
    resolver: Resolver | None = None,
    on_planned: Callable[[int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> ImageRun:
    """Download the media not yet recorded (at most `limit`); then write metadata.parquet."""
    clock = time.perf_counter()
    folder = images_folder(config.dir)
    files = folder / FILES
    files.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(folder / ".lock", blocking=False, what="the images folder"):
        run = _hydrate_images(items, config, folder, limit, retry_failed, resolver, on_planned, on_done)
    run.seconds = time.perf_counter() - clock
    return run


def _hydrate_images(
    items: list[MediaItem],
    config: HydrateConfig,
    folder: Path,
    limit: int | None,
    retry_failed: bool,
    resolver: Resolver | None,
    on_planned: Callable[[int], None] | None,
    on_done: Callable[[dict[str, Any]], None] | None,
) -> ImageRun:
    files = folder / FILES
    records = read_records(folder / RECORDS, "key")
    run = ImageRun(items=len(items))
    todo = []
    for item in items:
        record = records.get((item.tweet_id, item.image_index))
        if record is not None:
            ok = record.get("reason") is None
            if (ok and (files / record["file_name"]).is_file()) or (not ok and not retry_failed):
                run.cached += 1
                continue
        todo.append(item)
    if limit is not None:
        run.remaining = max(0, len(todo) - limit)
        todo = todo[:limit]
    if on_planned:
        on_planned(len(todo))
    with RecordLog(folder / RECORDS, config.commit_every_s) as log:
        asyncio.run(_download_all(todo, config, files, log, run, resolver, on_done))
    write_metadata(config.dir)
    return run


async def _download_all(
    todo: list[MediaItem],
    config: HydrateConfig,
    files: Path,
    log: RecordLog,
    run: ImageRun,
    resolver: Resolver | None,
    on_done: Callable[[dict[str, Any]], None] | None,
) -> None:
    async def one(item: MediaItem) -> None:
        record: dict[str, Any] = {
            "key": [item.tweet_id, item.image_index],
            "tweet_id": item.tweet_id,
            "image_index": item.image_index,
            "created_at": item.created_at.isoformat() if item.created_at else None,
            "author": item.author,
            "account_id": item.account_id,
            "conversation_id": item.conversation_id,
            "media_type": item.media_type,
            "media_url": item.media_url,
            "file_name": None,
            "bytes": 0,
            "content_type": None,
            "status": None,
        }
        try:
            url = normalize_url(item.media_url)
        except ValueError as exc:
            record.update(reason="invalid_url", detail=str(exc)[:300])
        else:
            result = await fetcher.fetch(url, _accept_image, config.max_image_bytes)
            run.fetched += 1
            record.update(status=result.status, reason=result.reason, detail=result.detail[:300])
            if result.ok and result.body is not None:
                extension = sniff_image(result.body)
                if extension is None:
                    record.update(reason="not_an_image", detail=f"served as {result.content_type or 'none'}")
                else:
                    name = image_file_name(item.tweet_id, item.image_index, extension)
                    _write_image(files, name, result.body)
                    record.update(file_name=name, bytes=len(result.body), content_type=IMAGE_TYPES[extension])
        record["fetched_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        log.append(record)
        if record["reason"] is None:
            run.ok += 1
            run.bytes += record["bytes"]
        else:
            run.failures[record["reason"]] += 1
        if on_done:
            on_done(record)

    async with Fetcher(config, resolver) as fetcher:
        await run_all(todo, config.concurrency, one)


def image_files(root: Path) -> pa.Table:
    """One row per media item tried: tweet id, image index, file name (null when it failed), time,
    author, conversation id, bytes, content type, HTTP status, failure reason."""
    records = read_records(images_folder(root) / RECORDS, "key").values()
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for record in sorted(records, key=lambda r: (r["tweet_id"], r["image_index"])):
        for name in SCHEMA.names:
            value = record.get(name)
            if name == "created_at" and value is not None:
                value = dt.datetime.fromisoformat(value)
            columns[name].append(value)
    return pa.table(columns, schema=SCHEMA)


def write_metadata(root: Path) -> Path:
    """`images/metadata.parquet`, replaced atomically."""
    import io

    buffer = io.BytesIO()
    pq.write_table(image_files(root), buffer)
    path = images_folder(root) / "metadata.parquet"
    atomic_write_bytes(path, buffer.getvalue())
    return path
