"""An OpenAI-compatible chat completions server on loopback that runs real (tiny) models with
transformers: each served name maps to a model folder, as vLLM serves a base and its adapters."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ChatServer:
    def __init__(self, models: dict[str, Path], api_key: str | None = None):
        from pipeline.train.evaluate import load_for_inference

        self.models = {name: load_for_inference(path, "fp32") for name, path in models.items()}
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.faults: list[int] = []
        self.lock = threading.Lock()  # one generation at a time (CPU)

    def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import torch

        self.requests.append(body)
        if self.faults:
            return self.faults.pop(0), {"error": {"message": "overloaded"}}
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"model {body.get('model')} does not exist"}}
        model, tokenizer = self.models[body["model"]]
        ids = tokenizer.apply_chat_template(
            body["messages"], tokenize=True, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        with self.lock, torch.no_grad():
            torch.manual_seed(0)
            out = model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=int(body.get("max_tokens", 16)),
                do_sample=float(body.get("temperature", 0)) > 0,
                temperature=float(body.get("temperature", 0)) or None,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }


@contextmanager
def serve(server: ChatServer) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                status, payload = 401, {"error": {"message": "bad key"}}
            elif self.path != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": "not found"}}
            else:
                status, payload = server.complete(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
