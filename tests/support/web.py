"""A small web on loopback for hydration tests and the benchmark: real-looking articles (navigation,
ads, cookie banner and footer around a multi-paragraph body), a PDF and a binary, redirects, slow
responses, 404/500, oversize bodies, and images of each format. Counts requests per path; an
injected latency delays every response (the benchmark)."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

WORDS = [
    "attention",
    "practice",
    "habit",
    "garden",
    "river",
    "letter",
    "morning",
    "signal",
    "question",
    "library",
    "window",
    "bridge",
    "market",
    "story",
    "engine",
    "summer",
    "lantern",
    "harbor",
    "theory",
    "pattern",
]

PARAGRAPHS = [
    "Attention is the rarest and purest form of generosity, and most of us give it away without noticing.",
    "For three months I kept a notebook of every time my focus drifted during the first hour of the morning.",
    "The pattern was clear: the drift came right after checking a phone, never after a walk by the river.",
    "So I moved the phone to the hallway and started the day with twenty minutes of reading on paper.",
    "By the end of the second month the notebook had fewer entries, and the entries were shorter.",
]


def article_html(title: str, paragraphs: list[str]) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Example Blog</title>
<script>window.dataLayer = [];function track(){{document.cookie='x=1'}}</script>
<style>.ad{{display:block}}</style></head>
<body>
<header><a href="/">Example Blog</a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/archive">Archive</a></li>
<li><a href="/about">About</a></li><li><a href="/subscribe">Subscribe</a></li></ul></nav></header>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>
<div class="ad advertisement">BUY NOW: premium noise-cancelling headphones, 50% off today only!</div>
<main><article><h1>{title}</h1><p class="byline">By Jane Writer, March 3, 2024</p>
{body}
</article></main>
<aside class="sidebar"><h3>Popular posts</h3><ul><li><a href="/p/1">Ten tips for productivity</a></li>
<li><a href="/p/2">Why I quit social media</a></li></ul></aside>
<footer><p>Copyright 2024 Example Media LLC. All rights reserved.</p>
<a href="/privacy">Privacy policy</a> <a href="/terms">Terms</a></footer>
</body></html>"""


def long_article_words(n: int) -> list[str]:
    """Paragraphs totalling `n` words (numbered, so a cut is visible)."""
    paragraphs, words = [], 0
    k = 0
    while words < n:
        chunk = [f"{WORDS[(k + i) % len(WORDS)]}{k + i}" for i in range(100)]
        paragraphs.append(" ".join(chunk) + ".")
        words += len(chunk)
        k += 100
    return paragraphs


def image_bytes(fmt: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (200, 30, 40)).save(buffer, fmt)
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
IMAGE_FORMATS = {
    "jpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "gif": ("GIF", "image/gif"),
    "webp": ("WEBP", "image/webp"),
}


class Web:
    def __init__(self, latency_s: float = 0.0, slow_s: float = 3.0, big_bytes: int = 200_000):
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.big_bytes = big_bytes
        self.requests: Counter[str] = Counter()
        self.hosts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.images = {ext: image_bytes(fmt) for ext, (fmt, _) in IMAGE_FORMATS.items()}
        self.long_paragraphs = long_article_words(60_000)
        self.bomb = gzip.compress(b"<html><body><p>" + b"a " * 1_500_000 + b"</p></body></html>")
        self.port = 0

    def route(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        html = {"Content-Type": "text/html; charset=utf-8"}
        if path.startswith("/article/"):
            name = path.rsplit("/", 1)[-1]
            paragraphs = [*PARAGRAPHS, f"This is article {name}, and its last paragraph names it."]
            return 200, html, article_html(f"Article {name}", paragraphs).encode()
        if path == "/long":
            return 200, html, article_html("A very long essay", self.long_paragraphs).encode()
        if path == "/empty":
            return (
                200,
                html,
                b"<html><head><title>x</title></head><body><nav><a href='/'>Home</a></nav></body></html>",
            )
        if path == "/plain.txt":
            return 200, {"Content-Type": "text/plain; charset=utf-8"}, b"Plain words here.\n\nSecond line."
        if path == "/doc.pdf":
            return 200, {"Content-Type": "application/pdf"}, PDF
        if path == "/binary":
            return 200, {"Content-Type": "application/octet-stream"}, bytes(range(256)) * 4
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[-1])
            return code, html, b"<html><body><h1>error</h1></body></html>"
        if path == "/redirect":
            target = query.get("to", ["/article/redirected"])[0]
            return 302, {"Location": target}, b""
        if path.startswith("/hops/"):
            n = int(path.rsplit("/", 1)[-1])
            return 301, {"Location": f"/hops/{n - 1}" if n > 1 else "/article/after-hops"}, b""
        if path == "/loop":
            return 302, {"Location": "/loop"}, b""
        if path == "/slow":  # after `delay`
            return 200, html, article_html("Slow", PARAGRAPHS).encode()
        if path == "/big":
            return 200, html, b"<html><body>" + b"<p>word </p>" * (self.big_bytes // 12) + b"</body></html>"
        if path == "/bomb":  # 3 KB on the wire, 3 MB once decompressed
            return 200, {**html, "Content-Encoding": "gzip"}, self.bomb
        if path.endswith((".sh", ".php")):  # a hostile name serving real image bytes
            return 200, {"Content-Type": "application/octet-stream"}, self.images["png"]
        if path.startswith("/img/"):
            ext = query.get("real", [path.rsplit(".", 1)[-1]])[0]
            if ext in self.images:
                content_type = query.get("ct", [IMAGE_FORMATS[ext][1]])[0]
                return 200, {"Content-Type": content_type}, self.images[ext]
            content_type = query.get("ct", ["text/html"])[0]
            return 200, {"Content-Type": content_type}, b"<html><body>not an image</body></html>"
        return 404, html, b"<html><body>not found</body></html>"

    def delay(self, path: str) -> float:
        """Seconds to wait before answering: the injected latency, plus `slow_s` for /slow."""
        return self.latency_s + (self.slow_s if path == "/slow" else 0.0)

    def count(self, path: str, host: str) -> None:
        with self._lock:
            self.requests[path] += 1
            self.hosts[host.split(":")[0]] += 1

    def handler(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in separate writes

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                web.count(parts.path, self.headers.get("Host") or "")
                if web.delay(parts.path):
                    time.sleep(web.delay(parts.path))
                status, headers, body = web.route(parts.path, parse_qs(parts.query))
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    if parts.path == "/big" and "chunked" in parts.query:
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        for start in range(0, len(body), 8192):
                            chunk = body[start : start + 8192]
                            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                        return
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a cap or a timeout): expected

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hang up on purpose (caps, timeouts); nothing to report


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` that is its own CA, and its key (PEM files in `folder`)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@contextmanager
def serve(
    web: Web | None = None, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None
) -> Iterator[Web]:
    """The web on a threaded server; `tls` (certificate, key) serves HTTPS."""
    web = web or Web()
    server = _Server((host, 0), web.handler())
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    web.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        server.shutdown()
        server.server_close()


async def _answer(web: Web, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 with keep-alive, enough for GET requests from httpx."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            host = next(
                (v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:]) if k.lower() == "host"), ""
            )
            parts = urlsplit(target)
            web.count(parts.path, host)
            if web.delay(parts.path):
                await asyncio.sleep(web.delay(parts.path))
            status, headers, body = web.route(parts.path, parse_qs(parts.query))
            reason = HTTPStatus(status).phrase
            header_lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\n{header_lines}Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, IndexError):
        pass
    finally:
        writer.close()


@contextmanager
def serve_async(web: Web | None = None, host: str = "127.0.0.1") -> Iterator[Web]:
    """The same web on an asyncio server in a background thread: thousands of concurrent slow responses
    cost no threads (the benchmark's injected latency), where `serve` spends a thread on each."""
    web = web or Web()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        server = await asyncio.start_server(
            lambda r, w: _answer(web, r, w), host, 0, backlog=1024, limit=1 << 16
        )
        servers.append(server)
        web.port = server.sockets[0].getsockname()[1]
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield web
    finally:
        loop.call_soon_threadsafe(servers[0].close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def extract_or_die(body: bytes, *args: object) -> tuple[int, bool]:
    """An extraction task whose worker process dies on a page containing CRASH (a parser crash)."""
    if b"CRASH" in body:
        os._exit(1)
    return len(body.split()), False
