"""Article hydration throughput against a loopback web with injected latency.

    python -m bench.hydrate [--latency 0.5] [--concurrency 1,16,64]

The web (tests/support/web.py: real-looking article pages, ~5 KB of HTML each) runs in its own
process and delays every response by `latency`. Each URL has its own host name (fixed answers to
127.0.0.1 through `hydrate.hosts`, the test-only allow-list opening loopback), so per-host
politeness does not cap the rate: the ideal rate is concurrency / latency. Each concurrency runs
in a fresh process (its peak RSS, with the extraction workers, is measured) against an empty
cache; the extraction pool is started before the clock. Results: bench/results/hydrate.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import machine, peak_rss_run

RESULTS = Path(__file__).parent / "results" / "hydrate.json"


def _serve(latency: float, ports: Any) -> None:
    from tests.support.web import Web, serve_async

    with serve_async(Web(latency_s=latency)) as web:
        ports.put(web.port)
        while True:
            time.sleep(3600)


def client(port: int, concurrency: int, n: int, folder: Path) -> dict[str, Any]:
    from pipeline.config import HydrateConfig
    from pipeline.hydrate.articles import hydrate_urls
    from pipeline.hydrate.extract import _warm_up, extraction_pool

    hosts = {f"site{i}.bench": "127.0.0.1" for i in range(n)}
    urls = [f"http://site{i}.bench:{port}/article/{i}" for i in range(n)]
    config = HydrateConfig(
        dir=folder,
        concurrency=concurrency,
        hosts=hosts,
        allow_networks=["127.0.0.1/32"],
        extract_workers=0,
    )
    pool = extraction_pool(0)
    for future in [pool.submit(_warm_up) for _ in range(4)]:
        future.result()
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        run = hydrate_urls(urls, config, executor=pool)
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        pool.shutdown()
    client_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "urls": n,
        "ok": run.ok,
        "failures": dict(run.failures),
        "seconds": run.seconds,
        "words": run.words,
        "client_cpu_ms_per_url": round(1000 * client_s / n, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=12.0, help="ideal duration of each run")
    parser.add_argument("--client", nargs=3, metavar=("PORT", "CONCURRENCY", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        port, concurrency, n = (int(v) for v in args.client)
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(client(port, concurrency, n, Path(folder))))
        return

    context = multiprocessing.get_context("spawn")
    ports = context.Queue()
    server = context.Process(target=_serve, args=(args.latency, ports), daemon=True)
    server.start()
    port = ports.get(timeout=30)
    rows = []
    try:
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            ideal = concurrency / args.latency
            n = max(10, round(ideal * args.seconds))
            cmd = [sys.executable, "-m", "bench.hydrate", "--client", str(port), str(concurrency), str(n)]
            out, _, rss = peak_rss_run(cmd)
            result = json.loads(out.strip().splitlines()[-1])
            rate = result["urls"] / result["seconds"]
            row = {
                "latency_s": args.latency,
                "concurrency": concurrency,
                **result,
                "urls_per_s": round(rate, 2),
                "ideal_urls_per_s": round(ideal, 2),
                "ratio_to_ideal": round(rate / ideal, 3),
                "peak_rss_mb": round(rss / 2**20),
                # the machine is shared: a busy neighbour takes the CPU this rate depends on at high concurrency
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
            rows.append(row)
            print(
                f"latency {args.latency:.2f} s, concurrency {concurrency:>3}: {n:>4} URLs ({result['ok']} ok) "
                f"in {result['seconds']:.2f} s = {rate:7.1f} URLs/s; ideal {ideal:7.1f}; "
                f"ratio {rate / ideal:.1%}; peak RSS {rss / 2**20:,.0f} MB; load average {os.getloadavg()[0]:.1f}; "
                f"client CPU per URL {result['client_cpu_ms_per_url']} ms",
                flush=True,
            )
    finally:
        server.terminate()
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    runs = [r for r in previous.get("runs", []) if r["latency_s"] != args.latency]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({**machine(), "runs": runs + rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
