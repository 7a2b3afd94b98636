"""Ingest benchmark: tweets/s and peak RSS next to the JSON parse floor, at several corpus sizes.

    python -m bench.ingest                         # 100k and 1M tweets over 200 accounts, 100k over 20
    python -m bench.ingest --corpora 100000:200    # quicker

The floor is the time just to read and parse the same files with orjson (one process,
GC paused, nothing kept); files are in the page cache for both the floor and the ingest. Ingest runs in a fresh subprocess per measurement, and its
peak RSS is the sum over the process and its workers, sampled every 20 ms.
Results: a markdown table on stdout and bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import orjson

from bench.common import machine, peak_rss_run
from pipeline.sources.archive_schema import ArchiveDoc
from pipeline.synth.generator import SynthSpec, generate_corpus

RESULTS = Path(__file__).parent / "results"

INGEST = """
import sys, time
from pathlib import Path
from pipeline.ingest import ingest_files
from pipeline.store import Store
files = sorted(Path(sys.argv[1]).glob("*.archive.json"))
t = time.perf_counter()
r = ingest_files(Store(sys.argv[2]), files, kind="archive", workers=int(sys.argv[3]), show_progress=False)
print(time.perf_counter() - t, r.tweets, len(r.failed))
"""


def parse_floor(files: list[Path]) -> tuple[float, float]:
    """(orjson seconds, msgspec typed-decode seconds) to read and parse every file once."""
    decoder = msgspec.json.Decoder(ArchiveDoc, strict=False)
    gc.disable()
    try:
        t = time.perf_counter()
        for f in files:
            orjson.loads(f.read_bytes())
        floor = time.perf_counter() - t
        t = time.perf_counter()
        for f in files:
            decoder.decode(f.read_bytes())
        typed = time.perf_counter() - t
    finally:
        gc.enable()
    return floor, typed


def markdown_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| tweets | accounts | corpus | synth | orjson floor | workers | ingest | tweets/s | ingest / floor | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tweets_in_corpus']:,} | {r['accounts']} | {r['corpus_mb']:,} MB | {r['synth_s']} s "
            f"| {r['orjson_floor_s']} s | {r['workers']} | {r['ingest_s']} s | {r['tweets_per_s']:,} "
            f"| {r['ratio_to_floor']}x | {r['peak_rss_mb']:,} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpora",
        nargs="+",
        default=["100000:200", "1000000:200", "100000:20"],
        help="TWEETS:ACCOUNTS pairs",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest is reported")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where corpora and stores go (default: a temp dir)"
    )
    parser.add_argument("--table", action="store_true", help="print the table of the last results and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads((RESULTS / "ingest.json").read_text())["rows"]))
        return
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="personas-bench-"))
    rows = []
    for pair in args.corpora:
        size, accounts = (int(v) for v in pair.split(":"))
        corpus = work / f"corpus-{size}-{accounts}"
        shutil.rmtree(corpus, ignore_errors=True)
        t = time.perf_counter()
        summary = generate_corpus(SynthSpec(accounts=accounts, tweets=size, seed=0), corpus, workers=2)
        synth_s = time.perf_counter() - t
        # Write the fresh corpus back to disk first: otherwise the ingest's first fsyncs pay for it
        # (ext4 journals dirty data together), which no user ingesting files already on disk sees.
        os.sync()
        files = sorted(corpus.glob("*.archive.json"))
        floor, typed = parse_floor(files)
        for workers in args.workers:
            store = work / f"store-{size}-{workers}"
            shutil.rmtree(store, ignore_errors=True)
            out, wall, peak = peak_rss_run(
                [sys.executable, "-c", INGEST, str(corpus), str(store), str(workers)]
            )
            seconds, tweets, failed = out.split()
            row = {
                "tweets_in_corpus": size,
                "corpus_mb": round(summary.bytes / 1e6, 1),
                "synth_s": round(synth_s, 2),
                "orjson_floor_s": round(floor, 2),
                "msgspec_typed_decode_s": round(typed, 2),
                "workers": workers,
                "ingest_s": round(float(seconds), 2),
                "process_wall_s": round(wall, 2),
                "tweets_stored": int(tweets),
                "tweets_per_s": round(int(tweets) / float(seconds)),
                "ratio_to_floor": round(float(seconds) / floor, 2),
                "peak_rss_mb": round(peak / 1e6),
                "failed_inputs": int(failed),
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(corpus, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps({"meta": machine(), "rows": rows}, indent=2) + "\n")
    print(markdown_table(rows))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
