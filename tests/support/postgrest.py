"""A PostgREST stand-in on loopback: enough of the real API (select, filters, order, limit, offset,
the 1000-row cap, apikey auth) to exercise the Community Archive source, plus scripted faults."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_ROWS = 1000


@dataclass
class Fault:
    resource: str
    times: int
    status: int = 503
    body: bytes = b'{"message":"upstream down"}'
    headers: dict[str, str] = field(default_factory=dict)


def _compare_key(stored: Any, arg: str) -> tuple[Any, Any]:
    if isinstance(stored, bool):
        return stored, arg.lower() == "true"
    if isinstance(stored, int):
        return stored, int(arg)
    return str(stored), arg


def _matches(value: Any, expr: str) -> bool:
    op, _, arg = expr.partition(".")
    if op == "is":
        return (value is None) if arg == "null" else (value is not None)
    if value is None:
        return False
    if op == "in":
        options = {a.strip('"') for a in arg.strip("()").split(",") if a}
        return str(value) in options
    if op == "ilike":
        pattern = "^" + re.escape(arg).replace(r"\*", ".*").replace("%", ".*") + "$"
        return re.match(pattern, str(value), re.IGNORECASE) is not None
    left, right = _compare_key(value, arg)
    return {
        "eq": left == right,
        "neq": left != right,
        "gt": left > right,
        "gte": left >= right,
        "lt": left < right,
        "lte": left <= right,
    }[op]


class PostgrestStandIn:
    """Tables are lists of row dicts; ids are strings (TEXT), as in the Community Archive."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]], *, api_key: str = "test-anon-key"):
        self.tables = tables
        self.api_key = api_key
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()

    def fail(self, resource: str, times: int = 1, **kwargs: Any) -> None:
        self.faults.append(Fault(resource, times, **kwargs))

    def count(self, resource: str) -> int:
        return sum(1 for path, _, _ in self.requests if path == resource)

    def respond(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        resource = path.rsplit("/", 1)[-1]
        with self._lock:
            self.requests.append((resource, dict(query), dict(headers)))
            for fault in self.faults:
                if fault.resource == resource and fault.times > 0:
                    fault.times -= 1
                    return fault.status, fault.headers, fault.body
        if headers.get("apikey") != self.api_key or headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, b'{"message":"Invalid API key"}'
        if resource not in self.tables:
            return 404, {}, b'{"message":"relation does not exist"}'
        rows = self.tables[resource]
        for key, expr in query.items():
            if key in ("select", "order", "limit", "offset"):
                continue
            rows = [r for r in rows if _matches(r.get(key), expr)]
        for part in reversed(query.get("order", "").split(",")):
            if part:
                column, _, direction = part.partition(".")
                present = [r for r in rows if r.get(column) is not None]
                missing = [r for r in rows if r.get(column) is None]
                present.sort(key=lambda r, c=column: r[c], reverse=direction.startswith("desc"))
                rows = present + missing
        offset = int(query.get("offset", 0))
        limit = min(int(query.get("limit", MAX_ROWS)), MAX_ROWS)
        total = len(rows)
        rows = rows[offset : offset + limit]
        select = query.get("select", "*")
        if select != "*":
            columns = [c.strip() for c in select.split(",")]
            rows = [{c: r.get(c) for c in columns} for r in rows]
        end = offset + len(rows) - 1
        extra = {"Content-Range": f"{offset}-{end}/{total}" if rows else f"*/{total}"}
        return 200, extra, json.dumps(rows).encode()


@contextmanager
def serve(standin: PostgrestStandIn) -> Iterator[str]:
    """Serve on 127.0.0.1 on a free port; yields the base URL (…/rest/v1)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, body = standin.respond(parts.path, query, headers)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rest/v1"
    finally:
        server.shutdown()
        server.server_close()


def parse_sql_inserts(sql: str) -> dict[str, list[dict[str, Any]]]:
    """Rows of `INSERT INTO "schema"."table" (cols) VALUES (...), (...);` statements (a pg_dump subset)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    pos = 0
    header = re.compile(r'INSERT INTO "\w+"\."(\w+)" \(([^)]*)\)(?: OVERRIDING SYSTEM VALUE)? VALUES\s*')
    while True:
        match = header.search(sql, pos)
        if match is None:
            return tables
        table = match.group(1)
        columns = [c.strip().strip('"') for c in match.group(2).split(",")]
        pos = match.end()
        while True:
            values, pos = _parse_tuple(sql, pos)
            tables.setdefault(table, []).append(dict(zip(columns, values, strict=True)))
            while sql[pos].isspace():
                pos += 1
            if sql[pos] == ";":
                pos += 1
                break
            assert sql[pos] == ",", sql[pos : pos + 40]
            pos += 1


def _parse_tuple(sql: str, pos: int) -> tuple[list[Any], int]:
    while sql[pos] != "(":
        pos += 1
    pos += 1
    values: list[Any] = []
    while True:
        while sql[pos].isspace():
            pos += 1
        if sql[pos] == "'":
            pos += 1
            chunks = []
            while True:
                end = sql.index("'", pos)
                chunks.append(sql[pos:end])
                if sql.startswith("''", end):
                    chunks.append("'")
                    pos = end + 2
                    continue
                pos = end + 1
                break
            values.append("".join(chunks))
        else:
            end = pos
            while sql[end] not in ",)":
                end += 1
            token = sql[pos:end].strip()
            pos = end
            if token == "NULL":
                values.append(None)
            elif token in ("true", "false"):
                values.append(token == "true")
            else:
                values.append(float(token) if "." in token else int(token))
        while sql[pos].isspace():
            pos += 1
        if sql[pos] == ")":
            return values, pos + 1
        pos += 1
