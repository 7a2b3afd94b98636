"""t-digest choice: updates/s and percentile error of fastdigest vs the pure-Python `tdigest` package.

    python -m bench.tdigest

Both are fed the same heavy-tailed values in 1,024-value chunks, each chunk first scored against
the digest (cdf) and then added, exactly as pipeline/scoring.py does. Results in bench/results/tdigest.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import fastdigest
import numpy as np
from tdigest import TDigest

from bench.common import machine

RESULTS = Path(__file__).parent / "results"


def run_fastdigest(values: np.ndarray, chunk: int) -> tuple[float, np.ndarray]:
    digest = fastdigest.TDigest()
    out = np.empty(len(values))
    start = time.perf_counter()
    for i in range(0, len(values), chunk):
        part = values[i : i + chunk].tolist()
        out[i : i + chunk] = digest.cdf_vec(part) if digest.n_values else 0.5
        digest.batch_update(part)
    return time.perf_counter() - start, out


def run_tdigest(values: np.ndarray, chunk: int) -> tuple[float, np.ndarray]:
    digest = TDigest()
    out = np.empty(len(values))
    start = time.perf_counter()
    for i in range(0, len(values), chunk):
        part = values[i : i + chunk]
        out[i : i + chunk] = [digest.cdf(v) for v in part] if digest.n else 0.5
        digest.batch_update(part)
    return time.perf_counter() - start, out


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for name, runner, n in (("fastdigest", run_fastdigest, 1_000_000), ("tdigest", run_tdigest, 20_000)):
        values = rng.lognormal(2.0, 1.5, n)
        seconds, percentiles = runner(values, 1024)
        exact = np.array(
            [
                np.searchsorted(np.sort(values[: i - i % 1024]), v) / max(i - i % 1024, 1)
                for i, v in enumerate(values[-2000:], start=n - 2000)
            ]
        )
        error = float(np.abs(percentiles[-2000:] - exact).max())
        rows.append(
            {
                "library": name,
                "values": n,
                "seconds": round(seconds, 3),
                "updates_per_s": round(n / seconds),
                "max_percentile_error_last_2000": round(error, 5),
            }
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tdigest.json").write_text(json.dumps({"meta": machine(), "rows": rows}, indent=2) + "\n")
    print("| library | values | updates+percentiles/s | max percentile error |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['library']} | {r['values']:,} | {r['updates_per_s']:,} | {r['max_percentile_error_last_2000']} |"
        )


if __name__ == "__main__":
    main()
