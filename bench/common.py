"""Helpers shared by the benchmarks: peak RSS of a process tree, corpus preparation, tables."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from pipeline.synth.generator import SynthSpec, generate_corpus


def peak_rss_run(cmd: list[str]) -> tuple[str, float, int]:
    """Run `cmd`; return its stdout, wall seconds and the peak summed RSS of it and its children."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            total = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed with {proc.returncode}")
    return out, time.perf_counter() - start, peak


def make_corpus(directory: Path, tweets: int, accounts: int, seed: int = 0) -> tuple[list[Path], float, int]:
    """A synthetic corpus, written back to disk (os.sync) so later timings do not pay for it."""
    t = time.perf_counter()
    summary = generate_corpus(SynthSpec(accounts=accounts, tweets=tweets, seed=seed), directory, workers=2)
    seconds = time.perf_counter() - t
    os.sync()
    return summary.files, seconds, summary.bytes


def machine() -> dict[str, Any]:
    return {
        "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "python": platform.python_version(),
    }
