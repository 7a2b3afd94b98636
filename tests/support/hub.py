"""A Hugging Face Hub stand-in on loopback: repo creation, preupload, Git LFS batch uploads and
NDJSON commits, enough for huggingface_hub's `create_repo` and `upload_folder`; it records every call."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import yaml


@dataclass
class HubStandIn:
    token: str = "hf_test_token"
    repos: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # repo_id -> {"private", "files": {path: bytes}}
    lfs: dict[str, bytes] = field(default_factory=dict)  # oid -> content
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    auth_headers: list[str] = field(default_factory=list)
    base_url: str = ""


def _card_errors(content: str) -> list[dict[str, str]]:
    """The checks the Hub makes on a dataset card's YAML that matter to loading it."""
    if not content.startswith("---\n") or "\n---" not in content[4:]:
        return [{"message": "no YAML front matter"}]
    meta = yaml.safe_load(content[4 : content.index("\n---", 4)])
    errors = []
    if not isinstance(meta, dict):
        return [{"message": "front matter is not a mapping"}]
    if not isinstance(meta.get("license"), str):
        errors.append({"message": '"license" must be a string'})
    for config in meta.get("configs", []):
        if "config_name" not in config or not all(
            "split" in f and "path" in f for f in config.get("data_files", [])
        ):
            errors.append(
                {"message": '"configs" entries need config_name and data_files with split and path'}
            )
    return errors


def _json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


@contextmanager
def serve_hub(hub: HubStandIn) -> Iterator[str]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            hub.auth_headers.append(header)
            return header == f"Bearer {hub.token}"

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            with lock:
                hub.calls.append(("POST", path))
            if path.endswith("/info/lfs/objects/batch"):
                request = json.loads(body)
                objects = [
                    {
                        "oid": o["oid"],
                        "size": o["size"],
                        "actions": {"upload": {"href": f"{hub.base_url}/lfs-upload/{o['oid']}"}},
                    }
                    for o in request["objects"]
                ]
                return _json(self, 200, {"transfer": "basic", "objects": objects})
            if not self._authorized():
                return _json(self, 401, {"error": "Invalid credentials in Authorization header"})
            if path == "/api/validate-yaml":
                errors = _card_errors(json.loads(body)["content"])
                return _json(self, 400 if errors else 200, {"errors": errors, "warnings": []})
            if path == "/api/repos/create":
                request = json.loads(body)
                repo_id = f"{request.get('organization') or 'me'}/{request['name']}"
                with lock:
                    if repo_id in hub.repos:
                        return _json(self, 409, {"error": "You already created this dataset repo", "url": ""})
                    hub.repos[repo_id] = {
                        "private": request.get("private", request.get("visibility") == "private"),
                        "files": {},
                        "type": request.get("type"),
                    }
                return _json(self, 200, {"url": f"{hub.base_url}/datasets/{repo_id}"})
            parts = path.split("/")
            # /api/datasets/{org}/{name}/{action}/{revision}
            if len(parts) >= 7 and parts[1] == "api" and parts[2] == "datasets":
                repo_id, action = f"{parts[3]}/{parts[4]}", parts[5]
                if repo_id not in hub.repos:
                    return _json(self, 404, {"error": "Repository not found"})
                if action == "preupload":
                    files = json.loads(body)["files"]
                    modes = [
                        {
                            "path": f["path"],
                            "uploadMode": "regular" if f["path"].endswith(".md") else "lfs",
                            "shouldIgnore": False,
                        }
                        for f in files
                    ]
                    return _json(self, 200, {"files": modes})
                if action == "commit":
                    stored = hub.repos[repo_id]["files"]
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            stored[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] == "lfsFile":
                            stored[item["value"]["path"]] = hub.lfs[item["value"]["oid"]]
                    oid = hashlib.sha1(repr(sorted(stored)).encode()).hexdigest()
                    return _json(
                        self,
                        200,
                        {"commitUrl": f"{hub.base_url}/datasets/{repo_id}/commit/{oid}", "commitOid": oid},
                    )
            return _json(self, 404, {"error": f"no route for POST {path}"})

        def do_PUT(self) -> None:
            path = urlsplit(self.path).path
            body = self._body()
            with lock:
                hub.calls.append(("PUT", path))
            if path.startswith("/lfs-upload/"):
                oid = path.rsplit("/", 1)[1]
                if hashlib.sha256(body).hexdigest() != oid:
                    return _json(self, 400, {"error": "oid mismatch"})
                hub.lfs[oid] = body
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return _json(self, 404, {"error": f"no route for PUT {path}"})

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            with lock:
                hub.calls.append(("GET", path))
            return _json(self, 404, {"error": f"no route for GET {path}"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub.base_url
    finally:
        server.shutdown()
        server.server_close()
