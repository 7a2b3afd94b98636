"""An OpenAI-compatible /v1/chat/completions stand-in on loopback, with scripted failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ChatStandIn:
    """Answers every chat completion with `reply` (or `reply(body)`), after the scripted `failures`."""

    reply: Any = "hello from the stand-in"
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (status, headers) served first
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies received
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@contextmanager
def chat_stand_in(stand_in: ChatStandIn | None = None) -> Iterator[ChatStandIn]:
    state = stand_in or ChatStandIn()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                state.requests.append(body)
                state.headers.append(dict(self.headers))
                failure = state.failures.pop(0) if state.failures else None
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": "not found"}})
            elif failure is not None:
                status, headers = failure
                self._send(status, {"error": {"message": f"scripted {status}"}}, headers)
            else:
                text = state.reply(body) if callable(state.reply) else state.reply
                self._send(
                    200,
                    {
                        "id": "chatcmpl-1",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
