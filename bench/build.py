"""`personas build` benchmark: wall time, tweets/s and peak RSS at several corpus sizes.

    python -m bench.build                            # 100k and 1M tweets over 200 accounts (~6 min on 2 cores)
    python -m bench.build --corpora 100000:200       # quicker

Each corpus is generated, ingested, then built (all datasets, no hydration) in a fresh
subprocess; peak RSS sums the build process and its workers, sampled every 20 ms.
Results: a markdown table on stdout and bench/results/build.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import machine, make_corpus, peak_rss_run
from pipeline.ingest import ingest_files
from pipeline.store import Store

RESULTS = Path(__file__).parent / "results"

BUILD = """
import json, sys, time
from pathlib import Path
from pipeline.config import DatasetsConfig
from pipeline.datasets.build import build
from pipeline.store import Store
if __name__ == "__main__":
    t = time.perf_counter()
    report = build(Store(sys.argv[1]), DatasetsConfig(out=Path(sys.argv[2]), workers=int(sys.argv[3])), show_progress=False)
    seconds = time.perf_counter() - t
    examples = {name: sum(d.splits.values()) for name, d in report.datasets.items()}
    print(json.dumps({"seconds": seconds, "tweets": report.tweets, "trees": report.trees, "phases": report.phases,
                      "examples": examples}))
"""


def markdown_table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| tweets in corpus | conversational tweets | workers | build | tweets/s | peak RSS | examples (two-party / multi-party / pairs) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ex = r["examples"]
        assert isinstance(ex, dict)
        lines.append(
            f"| {r['tweets_in_corpus']:,} | {r['tweets']:,} | {r['workers']} | {r['build_s']} s | {r['tweets_per_s']:,} "
            f"| {r['peak_rss_mb']:,} MB | {ex.get('chatml-two-party', 0):,} / {ex.get('chatml-multi-party', 0):,} / "
            f"{ex.get('prefs', 0):,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpora", nargs="+", default=["100000:200", "1000000:200"], help="TWEETS:ACCOUNTS pairs"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--table", action="store_true", help="print the table of the last results and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads((RESULTS / "build.json").read_text())["rows"]))
        return
    work = Path(tempfile.mkdtemp(prefix="personas-bench-build-"))
    rows = []
    try:
        for pair in args.corpora:
            size, accounts = (int(v) for v in pair.split(":"))
            files, _, _ = make_corpus(work / "corpus", size, accounts)
            store = Store(work / "store")
            ingest_files(store, files, kind="archive", workers=2, show_progress=False)
            shutil.rmtree(work / "corpus")
            for workers in args.workers:
                out, wall, peak = peak_rss_run(
                    [sys.executable, "-c", BUILD, str(store.root), str(work / "out"), str(workers)]
                )
                result = json.loads(out)
                row = {
                    "tweets_in_corpus": size,
                    "accounts": accounts,
                    "workers": workers,
                    "tweets": result["tweets"],
                    "trees": result["trees"],
                    "build_s": round(result["seconds"], 1),
                    "process_wall_s": round(wall, 1),
                    "tweets_per_s": round(result["tweets"] / result["seconds"]),
                    "peak_rss_mb": round(peak / 1e6),
                    "phases": result["phases"],
                    "examples": result["examples"],
                }
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
                shutil.rmtree(work / "out", ignore_errors=True)
            shutil.rmtree(store.root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "build.json").write_text(json.dumps({"meta": machine(), "rows": rows}, indent=2) + "\n")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
