"""Hydration against a loopback web: the SSRF guard, extraction, caps, cache, resume, images, ChatML refs."""

from __future__ import annotations

import asyncio
import ipaddress
import pickle
import re
import ssl
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import HydrateConfig
from pipeline.hydrate.articles import hydrate_urls
from pipeline.hydrate.cache import ArticleCache, HydratedReferences, url_key
from pipeline.hydrate.extract import Extractor, cap_words
from pipeline.hydrate.fetch import Fetcher, FetchResult, normalize_url
from pipeline.hydrate.guard import AddressPolicy, BlockedAddress, Guard, is_public
from pipeline.hydrate.records import RecordLog, read_records
from tests.support.web import PARAGRAPHS, Web, extract_or_die, self_signed, serve

pytestmark = pytest.mark.network_loopback

LOOPBACK = ["127.0.0.1/32"]


def hydrate_config(root: Path, **kw: Any) -> HydrateConfig:
    values: dict[str, Any] = {
        "dir": root,
        "hosts": {"blog.test": "127.0.0.1", "news.test": "127.0.0.1", "evil.test": "127.0.0.1"},
        "allow_networks": LOOPBACK,
        "extract_workers": -1,
        "host_interval_s": 0.0,
        "per_host": 4,
        "total_timeout_s": 1.0,
        "commit_every_s": 60.0,
    }
    values.update(kw)
    return HydrateConfig(**values)


def records_by_url(root: Path) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in ArticleCache(root).records().values()}


# -- the guard -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.251",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    assert not AddressPolicy().permits(ip)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_guard_vets_every_dns_answer_and_the_allow_list_is_explicit() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"mixed.test": ["93.184.216.34", "10.0.0.5"], "public.test": ["93.184.216.34"]}[host]

    guard = Guard(AddressPolicy(), {"evil.test": "127.0.0.1"}, resolver)
    for host in ("evil.test", "mixed.test", "127.0.0.1", "[::1]", "EVIL.test."):
        with pytest.raises(BlockedAddress) as refused:
            asyncio.run(guard.addresses(host, 80))
        assert refused.value.reason == "blocked_address"
    assert asyncio.run(guard.addresses("public.test", 443)) == ["93.184.216.34"]
    allowed = Guard(AddressPolicy(LOOPBACK), {"evil.test": "127.0.0.1"}, resolver)
    assert asyncio.run(allowed.addresses("evil.test", 80)) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress):
        asyncio.run(allowed.addresses("127.0.0.2", 80))  # the allow-list names 127.0.0.1 only


def test_default_config_has_the_guard_on() -> None:
    assert HydrateConfig().allow_networks == []


def test_normalize_url() -> None:
    assert normalize_url("HTTP://Blog.Example:80/a?utm_source=x&id=3#frag") == "http://blog.example/a?id=3"
    assert normalize_url("https://blog.example") == "https://blog.example/"
    assert (
        normalize_url("https://blog.example/s?q=a+b&flag&x=%2F") == "https://blog.example/s?q=a+b&flag&x=%2F"
    )
    assert normalize_url("https://blog.example/s?utm_medium=x") == "https://blog.example/s"
    assert (
        normalize_url("https://blog.example/a%2Fb?utm_source=1&k=%2F") == "https://blog.example/a%2Fb?k=%2F"
    )
    assert normalize_url("https://blog.example?q=1") == "https://blog.example/?q=1"
    for bad in ("ftp://x/y", "javascript:alert(1)", "file:///etc/passwd", "http://", "not a url"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def test_cap_words_keeps_the_first_words() -> None:
    assert cap_words("a b\nc  d e", 3) == ("a b\nc", 3, True)
    assert cap_words("a b", 3) == ("a b", 2, False)


# -- articles --------------------------------------------------------------------------------------


def test_articles_extracted_skipped_and_refused(tmp_path: Path) -> None:
    with serve() as web:
        base = f"http://blog.test:{web.port}"
        urls = {
            "article": f"{base}/article/one",
            "plain": f"{base}/plain.txt",
            "pdf": f"{base}/doc.pdf",
            "binary": f"{base}/binary",
            "404": f"{base}/status/404",
            "500": f"{base}/status/500",
            "slow": f"{base}/slow",
            "big": f"{base}/big",
            "big_chunked": f"{base}/big?chunked=1",
            "gzip_bomb": f"{base}/bomb",
            "hops": f"{base}/hops/3",
            "loop": f"{base}/loop",
            "empty": f"{base}/empty",
            "to_private": f"{base}/redirect?to=http://127.0.0.2:{web.port}/article/private",
            "to_metadata": f"{base}/redirect?to=http://169.254.169.254/latest/meta-data/",
            "to_file": f"{base}/redirect?to=file:///etc/passwd",
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "decimal_loopback": f"http://2130706433:{web.port}/article/decimal",
        }
        config = hydrate_config(tmp_path / "h", max_bytes=100_000, max_redirects=4)
        run = hydrate_urls(list(urls.values()), config)
        got = records_by_url(config.dir)
        reason = {name: got[normalize_url(u)]["reason"] for name, u in urls.items()}
        assert reason == {
            "article": None,
            "plain": None,
            "pdf": "content_type",
            "binary": "content_type",
            "404": "http_404",
            "500": "http_500",
            "slow": "timeout",
            "big": "too_large",
            "big_chunked": "too_large",
            "gzip_bomb": "too_large",
            "hops": None,
            "loop": "too_many_redirects",
            "empty": "no_text",
            "to_private": "blocked_address",
            "to_metadata": "blocked_address",
            "to_file": "scheme",
            "metadata": "blocked_address",
            "decimal_loopback": None,  # 2130706433 is 127.0.0.1, which this test's allow-list covers
        }
        assert run.ok == 4 and run.fetched == len(urls)
        assert web.requests["/article/private"] == 0  # refused before connecting
        assert web.requests["/loop"] == 5  # the first request and 4 redirects
        hops = got[normalize_url(urls["hops"])]
        assert hops["final_url"] == f"{base}/article/after-hops" and hops["redirects"] == 3
        article = got[normalize_url(urls["article"])]
        assert article["status"] == 200 and article["content_type"] == "text/html"
        assert article["final_url"] == urls["article"] and article["bytes"] > 0

        text = ArticleCache(config.dir).read_text(url_key(normalize_url(urls["article"])))
        assert text is not None
        for paragraph in PARAGRAPHS:
            assert paragraph in text
        assert "This is article one" in text
        for boilerplate in (
            "BUY NOW",
            "cookies",
            "Popular posts",
            "Copyright",
            "Privacy policy",
            "Subscribe",
            "dataLayer",
        ):
            assert boilerplate not in text
        assert article["words"] == len(text.split())


def test_hostname_resolving_to_loopback_is_refused_without_the_allow_list(tmp_path: Path) -> None:
    with serve() as web:
        config = hydrate_config(tmp_path / "h", allow_networks=[])
        run = hydrate_urls(
            [f"http://evil.test:{web.port}/article/x", f"http://localhost:{web.port}/article/y"], config
        )
        assert run.failures == {"blocked_address": 2}
        assert sum(web.requests.values()) == 0


def test_fifty_thousand_word_cap(tmp_path: Path) -> None:
    with serve() as web:
        config = hydrate_config(tmp_path / "h")
        url = f"http://blog.test:{web.port}/long"
        hydrate_urls([url], config)
        record = records_by_url(config.dir)[url]
        text = ArticleCache(config.dir).read_text(record["key"])
    assert text is not None
    assert record["words"] == 50_000 and record["truncated"] is True
    words = text.split()
    assert len(words) == 50_000
    # the essay's numbered words come in order, without a gap, up to the cut (after the title)
    numbered = [int(re.sub(r"^\D+", "", w.rstrip("."))) for w in words if re.fullmatch(r"[a-z]+\d+\.?", w)]
    assert numbered == list(range(len(numbered))) and 49_990 <= len(numbered) < 50_000


def test_second_run_hits_the_cache(tmp_path: Path) -> None:
    with serve() as web:
        urls = [f"http://blog.test:{web.port}/article/{i}" for i in range(6)] + [
            f"http://blog.test:{web.port}/status/404"
        ]
        config = hydrate_config(tmp_path / "h")
        first = hydrate_urls(urls, config)
        requests = sum(web.requests.values())
        second = hydrate_urls([*urls, f"{urls[0]}#section", f"{urls[1]}?utm_source=tw"], config)
        assert (first.fetched, first.ok) == (7, 6)
        assert (second.fetched, second.cached) == (0, 7)
        assert sum(web.requests.values()) == requests == 7
        retry = hydrate_urls(urls, config, retry_failed=True)
        assert retry.fetched == 1 and web.requests["/status/404"] == 2


def test_limit_then_resume_fetches_only_the_rest(tmp_path: Path) -> None:
    with serve() as web:
        urls = [f"http://blog.test:{web.port}/article/{i}" for i in range(10)]
        config = hydrate_config(tmp_path / "h", concurrency=1)
        first = hydrate_urls(urls, config, limit=4)
        assert (first.fetched, first.remaining) == (4, 6)
        second = hydrate_urls(urls, config)
        assert (second.fetched, second.cached) == (6, 4)
        assert all(web.requests[f"/article/{i}"] == 1 for i in range(10))


def test_interrupted_run_resumes(tmp_path: Path) -> None:
    """Ctrl-C after three URLs: those three are durable; a torn line from a crash is cut; the rest follows."""
    with serve() as web:
        urls = [f"http://blog.test:{web.port}/article/{i}" for i in range(8)]
        config = hydrate_config(tmp_path / "h", concurrency=1)
        done: list[str] = []

        def interrupt(record: dict[str, Any]) -> None:
            done.append(record["url"])
            if len(done) == 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            hydrate_urls(urls, config, on_done=interrupt)
        log = ArticleCache(config.dir).records_path
        assert len(read_records(log, "key")) == 3
        with open(log, "ab") as handle:  # what a crash mid-write leaves behind
            handle.write(b'{"key": "torn')
        resumed = hydrate_urls(urls, config)
        assert (resumed.fetched, resumed.cached) == (5, 3)
        assert all(web.requests[f"/article/{i}"] == 1 for i in range(8))
        assert len(read_records(log, "key")) == 8
        assert b"torn" not in log.read_bytes()


def test_lost_text_file_is_fetched_again(tmp_path: Path) -> None:
    with serve() as web:
        url = f"http://blog.test:{web.port}/article/lost"
        config = hydrate_config(tmp_path / "h")
        hydrate_urls([url], config)
        ArticleCache(config.dir).text_path(url_key(url)).unlink()
        assert hydrate_urls([url], config).fetched == 1
        assert ArticleCache(config.dir).read_text(url_key(url))


def test_per_host_politeness(tmp_path: Path) -> None:
    web = Web(latency_s=0.2)
    with serve(web):
        urls = [f"http://blog.test:{web.port}/article/{i}" for i in range(4)]
        urls += [f"http://news.test:{web.port}/article/n{i}" for i in range(4)]
        config = hydrate_config(tmp_path / "h", concurrency=8, per_host=1)
        run = hydrate_urls(urls, config)
    # one at a time per host: two hosts of four 0.2 s requests take about 0.8 s, not 0.2 s
    assert run.ok == 8 and run.seconds >= 0.75


def test_https_keeps_the_host_name_for_sni_and_certificates(tmp_path: Path) -> None:
    """The connection goes to the pinned IP, yet TLS verifies the URL's host name and HTTP sends it."""
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path, "secure.test")
    with serve(tls=(cert, key)) as web:
        config = hydrate_config(tmp_path / "h", hosts={"secure.test": "127.0.0.1", "other.test": "127.0.0.1"})
        trusted = ssl.create_default_context(cafile=str(cert))

        async def fetch(url: str) -> FetchResult:
            async with Fetcher(config, verify=trusted) as fetcher:
                return await fetcher.fetch(url, lambda ctype: ctype == "text/html", 1_000_000)

        good = asyncio.run(fetch(f"https://secure.test:{web.port}/article/tls"))
        assert good.ok and good.body is not None and b"This is article tls" in good.body
        assert web.hosts["secure.test"] == 1
        wrong = asyncio.run(fetch(f"https://other.test:{web.port}/article/other"))  # same IP, other name
        assert wrong.reason == "connect" and "certificate" in wrong.detail.lower()
        assert web.requests["/article/other"] == 0


def test_a_crashing_extraction_worker_costs_only_its_page() -> None:
    extractor = Extractor(1, task=extract_or_die)

    async def run() -> list[Any]:
        pages = [b"one two", b"CRASH here", b"three four five"]
        return await asyncio.gather(*(extractor(page) for page in pages), return_exceptions=True)

    try:
        first = asyncio.run(run())
        assert first[0] == (2, False) and first[2] == (3, False)
        assert isinstance(first[1], BrokenProcessPool)
        assert extractor.restarts == 1  # the retries ran alone, so the new pool was never broken
        assert asyncio.run(extractor(b"after the crash")) == (3, False)  # a fresh pool serves the rest
    finally:
        extractor.close()


def test_record_log_skips_a_corrupt_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RecordLog(path) as log:
        log.append({"key": "a", "v": 1})
    with open(path, "ab") as handle:
        handle.write(b"not json\n")
    with RecordLog(path) as log:
        log.append({"key": "a", "v": 2})
        log.append({"key": "b", "v": 3})
    assert {k: r["v"] for k, r in read_records(path, "key").items()} == {"a": 2, "b": 3}


def test_hydrated_references_pickle_and_cap(tmp_path: Path) -> None:
    with serve() as web:
        url = f"http://blog.test:{web.port}/article/ref"
        config = hydrate_config(tmp_path / "h")
        hydrate_urls([url], config)
    refs = HydratedReferences(config.dir, max_words=12)
    found = refs.lookup([url, f"{url}#x", "http://blog.test/missing", "not a url"])
    assert set(found) == {url, f"{url}#x"}
    stored = ArticleCache(config.dir).read_text(url_key(url))
    assert stored is not None and len(stored.split()) > 12
    assert found[url] == " ".join(stored.split()[:12]) + " …"
    assert "Attention is the rarest" in found[url]
    clone = pickle.loads(pickle.dumps(refs))
    assert clone.lookup([url]) == {url: found[url]}
    assert HydratedReferences(config.dir, max_words=0).lookup([url]) == {}


def test_a_failed_fetch_leaves_no_text_behind(tmp_path: Path) -> None:
    """A text written by a run that crashed before its record is dropped when the URL then fails."""
    with serve() as web:
        url = f"http://blog.test:{web.port}/status/404"
        config = hydrate_config(tmp_path / "h")
        path = ArticleCache(config.dir).text_path(url_key(url))
        path.parent.mkdir(parents=True)
        path.write_text("left by a crashed run")
        run = hydrate_urls([url], config)
    assert run.failures == {"http_404": 1}
    assert not path.exists() and HydratedReferences(config.dir).lookup([url]) == {}
