"""A Together.ai fine-tuning stand-in on loopback: files upload, fine-tune creation, status polling,
bearer auth, and scripted faults (a 5xx or 429 before success)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class TogetherStandIn:
    def __init__(
        self,
        api_key: str = "test-together-key",
        statuses: tuple[str, ...] = ("queued", "running", "completed"),
    ):
        self.api_key = api_key
        self.statuses = statuses
        self.files: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.faults: list[int] = []  # statuses to answer before the next real response
        self.requests: list[tuple[str, str]] = []
        self.authorizations: set[str] = set()

    def respond(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path))
        self.authorizations.add(headers.get("Authorization", ""))
        if headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, {"message": "invalid api key"}
        if self.faults:
            return self.faults.pop(0), {"message": "try again"}
        if method == "POST" and path == "/v1/files":
            message = BytesParser(policy=default_policy).parsebytes(
                b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            parts = {
                part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
            }
            if (
                "file" not in parts
                or parts.get("purpose") is None
                or parts["purpose"].get_content().strip() != "fine-tune"
            ):
                return 400, {"message": "file and purpose=fine-tune required"}
            content = parts["file"].get_payload(decode=True)
            lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
            if not lines or any("messages" not in line for line in lines):
                return 400, {"message": "invalid conversational jsonl"}
            file_id = f"file-{uuid.uuid4()}"
            self.files[file_id] = {"lines": lines, "filename": parts["file"].get_filename()}
            return 200, {"id": file_id, "object": "file", "purpose": "fine-tune", "bytes": len(content)}
        if method == "POST" and path == "/v1/fine-tunes":
            payload = json.loads(body)
            if payload.get("training_file") not in self.files or not payload.get("model"):
                return 400, {"message": "unknown training_file or missing model"}
            job_id = f"ft-{uuid.uuid4()}"
            self.jobs[job_id] = payload
            self.polls[job_id] = 0
            return 200, {"id": job_id, "status": "pending", "model": payload["model"]}
        if method == "GET" and path.startswith("/v1/fine-tunes/"):
            job_id = path.rsplit("/", 1)[-1]
            if job_id not in self.jobs:
                return 404, {"message": "no such job"}
            status = self.statuses[min(self.polls[job_id], len(self.statuses) - 1)]
            self.polls[job_id] += 1
            body_out = {"id": job_id, "status": status, "model": self.jobs[job_id]["model"]}
            if status == "completed":
                body_out["output_name"] = f"user/{self.jobs[job_id]['model'].split('/')[-1]}-{job_id[3:11]}"
            return 200, body_out
        return 404, {"message": "not found"}


@contextmanager
def serve(standin: TogetherStandIn) -> Iterator[str]:
    """Serve on 127.0.0.1; yields the base URL (…/v1)."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = standin.respond(method, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
