"""Remote fine-tuning on Together.ai, for users without GPUs: upload a JSONL, create a job, poll it.

The JSONL is the ChatML dataset in Together's conversational format: one `{"messages": [...]}` per
line, each message with `weight` 1 (learned) or 0 (context), from the per-message `train` flags,
so the remote loss follows the same branch masking as local SFT. The API key comes from
`[train.remote] api_key` or $TOGETHER_API_KEY and is never logged. Requests are retried with
exponential backoff on transport errors, 429 (Retry-After honoured) and 5xx.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from pipeline.progress import progress_task
from pipeline.store.atomic import atomic_write_bytes
from pipeline.train.common import TrainingError, load_split, slim_messages
from pipeline.train.config import RemoteConfig

log = logging.getLogger("pipeline.train.remote")

DONE = {"completed"}
FAILED = {"error", "failed", "cancelled", "canceled", "user_error"}


class RemoteError(TrainingError):
    pass


def export_jsonl(data: Path, split: str, out: Path, max_examples: int | None = None) -> int:
    """The ChatML split as Together conversational JSONL (message weights from `train`); returns rows."""
    rows = load_split(data, split, max_examples)
    if "messages" not in rows.column_names:
        raise TrainingError(f"{data} has no `messages` column")
    lines = []
    for row in rows:
        messages = slim_messages(row["messages"])
        if not any(m["role"] == "assistant" and m["train"] for m in messages):
            continue
        lines.append(
            orjson.dumps(
                {
                    "messages": [
                        {
                            "role": m["role"],
                            "content": m["content"],
                            "weight": int(m["role"] == "assistant" and m["train"]),
                        }
                        for m in messages
                    ]
                }
            )
        )
    if not lines:
        raise TrainingError(f"no example of {data} [{split}] has an assistant message to train on")
    atomic_write_bytes(out, b"\n".join(lines) + b"\n")
    return len(lines)


@dataclass
class Job:
    id: str
    status: str
    model: str | None
    output_name: str | None
    raw: dict[str, Any]


class TogetherFineTuning:
    """The three calls of the fine-tuning API (files, fine-tunes, fine-tunes/{id})."""

    def __init__(self, config: RemoteConfig, *, transport: httpx.BaseTransport | None = None):
        key = config.api_key.get_secret_value() if config.api_key else os.environ.get("TOGETHER_API_KEY")
        if not key:
            raise RemoteError("no API key: set TOGETHER_API_KEY (or [train.remote] api_key)")
        self.config = config
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {key}"},
            timeout=config.timeout_s,
            transport=transport,
        )
        self.retries = 0

    def __enter__(self) -> TogetherFineTuning:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        delay = 1.0
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    try:
                        body = response.json()
                    except ValueError as exc:
                        raise RemoteError(f"{method} {url}: the response is not JSON") from exc
                    if not isinstance(body, dict):
                        raise RemoteError(f"{method} {url}: unexpected response {str(body)[:200]}")
                    return body
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in (429,) and response.status_code < 500:
                    raise RemoteError(f"{method} {url} failed: {problem}")
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt == self.config.max_attempts:
                raise RemoteError(f"{method} {url} failed after {attempt} attempts: {problem}")
            self.retries += 1
            log.info("%s %s: %s; retrying in %.1f s", method, url, problem, delay)
            time.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, 60.0)
        raise AssertionError("unreachable")

    def upload(self, path: Path) -> str:
        with open(path, "rb") as handle:
            body = self._request(
                "POST",
                "/files",
                files={"file": (path.name, handle.read(), "application/jsonl")},
                data={"purpose": "fine-tune", "file_name": path.name},
            )
        if not body.get("id"):
            raise RemoteError(f"upload of {path} returned no file id")
        return str(body["id"])

    def create(self, file_id: str, *, suffix: str | None = None) -> Job:
        config = self.config
        payload: dict[str, Any] = {
            "training_file": file_id,
            "model": config.model,
            "n_epochs": config.epochs,
            "learning_rate": config.learning_rate,
            "training_type": {"type": "Lora"} if config.lora else {"type": "Full"},
        }
        if suffix:
            payload["suffix"] = suffix
        return self._job(self._request("POST", "/fine-tunes", json=payload))

    def status(self, job_id: str) -> Job:
        return self._job(self._request("GET", f"/fine-tunes/{job_id}"))

    def wait(
        self, job_id: str, *, timeout_s: float | None = None, on_poll: Callable[[Job], None] | None = None
    ) -> Job:
        """Poll until the job completes (returned) or fails (RemoteError)."""
        started = time.monotonic()
        while True:
            job = self.status(job_id)
            if on_poll:
                on_poll(job)
            if job.status in DONE:
                return job
            if job.status in FAILED:
                raise RemoteError(
                    f"fine-tune {job_id} ended with status {job.status}: {job.raw.get('message') or ''}"
                )
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                raise RemoteError(f"fine-tune {job_id} still {job.status} after {timeout_s:.0f} s")
            time.sleep(self.config.poll_s)

    @staticmethod
    def _job(body: dict[str, Any]) -> Job:
        if not body.get("id"):
            raise RemoteError(f"fine-tune response without an id: {str(body)[:200]}")
        return Job(
            id=str(body["id"]),
            status=str(body.get("status") or "unknown").lower(),
            model=body.get("model"),
            output_name=body.get("output_name"),
            raw=body,
        )


def submit(
    config: RemoteConfig,
    data: Path,
    *,
    split: str = "train",
    work_dir: Path,
    wait: bool = False,
    suffix: str | None = None,
    max_examples: int | None = None,
    transport: httpx.BaseTransport | None = None,
    show_progress: bool = True,
) -> Job:
    """Export, upload, create the job, optionally wait; the job's record goes to <work_dir>/job.json."""
    jsonl = Path(work_dir) / f"{Path(data).name}-{split}.jsonl"
    rows = export_jsonl(data, split, jsonl, max_examples)
    log.info("exported %d examples to %s", rows, jsonl)
    with TogetherFineTuning(config, transport=transport) as api:
        file_id = api.upload(jsonl)
        job = api.create(file_id, suffix=suffix)
        record = Path(work_dir) / "job.json"
        atomic_write_bytes(
            record,
            orjson.dumps({"file_id": file_id, "examples": rows, **job.raw}, option=orjson.OPT_INDENT_2),
        )
        if wait:
            with progress_task(f"fine-tune {job.id}", None, "polls", show=show_progress) as bar:
                job = api.wait(job.id, on_poll=lambda j: bar.advance(1))
            atomic_write_bytes(
                record,
                orjson.dumps({"file_id": file_id, "examples": rows, **job.raw}, option=orjson.OPT_INDENT_2),
            )
    return job
