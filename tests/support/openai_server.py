"""An OpenAI-compatible stand-in on loopback: /v1/chat/completions (plain and SSE streaming),
/v1/models, /health, vLLM's LoRA load/unload, and Naptha's /inference/chat/completions.

Replies come from `reply(body) -> str` (default: replays `replies` in order, cycling), so tests
know exactly what the server said. Scripted faults (status codes, delays) exercise retries and
timeouts; every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    times: int
    status: int = 500
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class OpenAIStandIn:
    def __init__(
        self,
        replies: list[str] | None = None,
        *,
        reply: Callable[[dict[str, Any]], str] | None = None,
        models: tuple[str, ...] = ("tiny-base",),
        api_key: str | None = None,
    ):
        self.replies = replies or ["hello there"]
        self.reply = reply
        self.models = list(models)
        self.adapters: dict[str, str] = {}
        self.api_key = api_key
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._served = 0
        self._lock = threading.Lock()
        self.url = ""

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def fail(self, times: int = 1, status: int = 500, delay_s: float = 0.0, **headers: str) -> None:
        self.faults.append(
            Fault(times, status, delay_s, {k.replace("_", "-"): v for k, v in headers.items()})
        )

    def _next_fault(self) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def completion_text(self, body: dict[str, Any]) -> str:
        if self.reply is not None:
            return self.reply(body)
        with self._lock:
            text = self.replies[self._served % len(self.replies)]
            self._served += 1
        return text


def _words(text: str) -> int:
    return len(text.split())


def _handler(server: OpenAIStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else Nagle + delayed ACKs add ~40 ms per keep-alive response

        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                data = [{"id": m, "object": "model", "parent": None} for m in server.models]
                data += [{"id": n, "object": "model", "parent": server.models[0]} for n in server.adapters]
                self._json(200, {"object": "list", "data": data})
            else:
                self._json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._json(400, {"error": {"message": "bad json"}})
                return
            if self.path == "/v1/load_lora_adapter":
                name = body.get("lora_name")
                if name in server.adapters and not body.get("load_inplace"):
                    self._json(400, {"error": {"message": f"adapter {name} already loaded"}})
                    return
                server.adapters[name] = body.get("lora_path")
                self._json(200, {})
                return
            if self.path == "/v1/unload_lora_adapter":
                if server.adapters.pop(body.get("lora_name"), None) is None:
                    self._json(404, {"error": {"message": "no such adapter"}})
                else:
                    self._json(200, {})
                return
            if self.path not in ("/v1/chat/completions", "/inference/chat/completions"):
                self._json(404, {"error": {"message": "not found"}})
                return
            with server._lock:
                server.requests.append(body)
                server.headers.append(dict(self.headers))
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                self._json(401, {"error": {"message": "bad api key"}})
                return
            fault = server._next_fault()
            if fault is not None:
                time.sleep(fault.delay_s)
                if fault.status >= 400:
                    self._json(
                        fault.status, {"error": {"message": f"scripted {fault.status}"}}, fault.headers
                    )
                    return
            model = body.get("model")
            known = set(server.models) | set(server.adapters)
            if model not in known:
                self._json(404, {"error": {"message": f"The model `{model}` does not exist."}})
                return
            text = server.completion_text(body)
            prompt = sum(_words(str(m.get("content", ""))) for m in body.get("messages", []))
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": _words(text),
                "total_tokens": prompt + _words(text),
            }
            if body.get("stream"):
                self._stream(model, text, usage)
                return
            self._json(
                200,
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )

        def _stream(self, model: str, text: str, usage: dict[str, int]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def event(payload: str) -> None:
                data = payload.encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            event(": keep-alive\n\n")
            pieces = [w + " " for w in text.split(" ")]
            pieces[-1] = pieces[-1].rstrip(" ")
            for piece in [{"role": "assistant"}] + [{"content": p} for p in pieces]:
                chunk = {"model": model, "choices": [{"index": 0, "delta": piece, "finish_reason": None}]}
                event(f"data: {json.dumps(chunk)}\n\n")
            event(f"data: {json.dumps({'model': model, 'choices': [], 'usage': usage})}\n\n")
            event("data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


@contextmanager
def serve_openai(stand_in: OpenAIStandIn) -> Iterator[OpenAIStandIn]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
    httpd.daemon_threads = True
    stand_in.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        httpd.shutdown()
        httpd.server_close()
