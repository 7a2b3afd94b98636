"""Discord benchmark: a generated 1M-message compact channel through extract+thread and on to training JSONL.

    python -m bench.discord [--messages 1000000] [--runs 3]

The generator writes realistic compact JSON (discord-summarizer's format, one file per
Pacific day, ~30k messages a day): 3,000 users with heavy-tailed activity (plus 20 bots),
24% replies to recent messages with a reply-ping mention, pins/ThreadCreated/slash-command
noise, reactions, edits, links and code, lognormal message lengths (median ~50 chars),
Pacific offsets across the DST change, timestamps consistent with snowflake ids.

Measured, each in a fresh process (peak RSS of that process):
- **extract+thread**: `personas discord extract` minus its writes: decode, dedupe, filter,
  scrub, thread (in-process phases timed separately);
- **extract**: the whole `personas discord extract` command, Parquet writes included;
- **end to end**: extract, users (top 50), generate (200 examples per user) to JSONL + dataset.
Results go to bench/results/discord.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import machine, peak_rss_run
from pipeline.discord.model import snowflake_at

RESULTS = Path(__file__).parent / "results" / "discord.json"
PACIFIC_DST_END = dt.datetime(2024, 11, 3, 9, 0, tzinfo=dt.UTC)  # 02:00 PDT -> 01:00 PST
WORDS = [
    "the",
    "a",
    "to",
    "i",
    "it",
    "and",
    "you",
    "is",
    "that",
    "of",
    "for",
    "in",
    "this",
    "on",
    "with",
    "agent",
    "eliza",
    "plugin",
    "twitter",
    "client",
    "build",
    "node",
    "pnpm",
    "docker",
    "error",
    "fix",
    "works",
    "character",
    "file",
    "memory",
    "model",
    "openai",
    "llama",
    "token",
    "deploy",
    "cache",
    "api",
    "key",
    "env",
    "discord",
    "telegram",
    "bot",
    "repo",
    "github",
    "branch",
    "main",
    "develop",
    "merge",
    "pr",
    "issue",
    "docs",
    "run",
    "start",
    "install",
    "why",
    "how",
    "what",
    "just",
    "like",
    "yeah",
    "lol",
    "nice",
    "thanks",
    "gm",
    "bro",
    "idk",
    "maybe",
    "think",
    "need",
    "try",
    "using",
    "use",
    "trying",
    "got",
    "get",
]


def _pacific(moment: dt.datetime) -> dt.datetime:
    offset = -7 if moment < PACIFIC_DST_END else -8
    return moment.astimezone(dt.timezone(dt.timedelta(hours=offset)))


def _text(rng: random.Random) -> str:
    n = max(1, int(rng.lognormvariate(2.2, 0.8)))
    words = rng.choices(WORDS, k=n)
    roll = rng.random()
    if roll < 0.04:
        words.append(f"https://github.com/elizaOS/eliza/pull/{rng.randrange(1, 9999)}")
    elif roll < 0.06:
        words.append("```pnpm install && pnpm build```")
    return " ".join(words)


def generate_channel(out: Path, messages: int, seed: int = 0, per_day: int = 30_000) -> list[Path]:
    """Daily compact files holding `messages` messages in all."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    users = {}
    weights = []
    for i in range(3000):
        uid = str(400000000000000000 + i * 7919)
        users[uid] = {"name": f"user{i}", "nickname": f"User {i}" if i % 3 else None}
        weights.append(1 / (i + 1) ** 1.1)
    bots = []
    for i in range(20):
        uid = str(500000000000000000 + i)
        users[uid] = {"name": f"bot{i}", "nickname": f"Bot {i}", "isBot": True}
        bots.append(uid)
    humans = list(users)[:3000]
    cumulative = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    channel = {"id": "1300025221834739744", "name": "💻-coders", "topic": "code", "category": "Development"}
    start = dt.datetime(2024, 10, 27, 7, 0, tzinfo=dt.UTC)
    ms = int(start.timestamp() * 1000)
    day_ms = 86_400_000
    files: list[Path] = []
    recent: list[tuple[str, str]] = []  # (id, uid)
    made = 0
    day = 0
    while made < messages:
        count = min(per_day, messages - made)
        rows: list[dict[str, Any]] = []
        day_end = int(start.timestamp() * 1000) + (day + 1) * day_ms
        mean_gap = max(1.0, (day_end - ms) / (count + 1) * 0.6)
        for _ in range(count):
            # conversations come in sessions: now and then the channel goes quiet for 20-180 minutes
            quiet = rng.random() < 0.004
            ms += int(rng.uniform(20, 180) * 60_000) if quiet else max(1, int(rng.expovariate(1 / mean_gap)))
            ident = str(snowflake_at(ms, made & 0xFFF))
            roll = rng.random()
            uid = bots[rng.randrange(20)] if roll < 0.03 else humans[_pick(rng, cumulative, total)]
            moment = _pacific(dt.datetime.fromtimestamp(ms / 1000, dt.UTC))
            row: dict[str, Any] = {
                "id": ident,
                "ts": moment.isoformat(timespec="milliseconds"),
                "uid": uid,
                "content": _text(rng),
            }
            kind_roll = rng.random()
            if kind_roll < 0.24 and recent:
                parent_id, parent_uid = recent[-1 - min(len(recent) - 1, int(rng.expovariate(0.3)))]
                row.update(type="Reply", ref=parent_id, mentions=[parent_uid])
            elif kind_roll < 0.2415:
                row.update(type="ChannelPinnedMessage", content="Pinned a message.")
            elif kind_roll < 0.2420:
                row.update(type="ThreadCreated", content="Started a thread.")
            if rng.random() < 0.2:
                row["reactions"] = [{"emoji": "🔥", "count": rng.randrange(1, 8)}]
            if rng.random() < 0.09:
                row["edited"] = moment.isoformat(timespec="milliseconds")
            rows.append(row)
            recent.append((ident, uid))
            if len(recent) > 64:
                del recent[:32]
            made += 1
        date = _pacific(dt.datetime.fromtimestamp(ms / 1000, dt.UTC)).date().isoformat()
        path = out / f"chat_{day:03d}_{date}.json"
        path.write_bytes(orjson.dumps({"channel": channel, "date": date, "users": users, "messages": rows}))
        files.append(path)
        day += 1
    return files


def _pick(rng: random.Random, cumulative: list[float], total: float) -> int:
    import bisect

    return bisect.bisect_left(cumulative, rng.random() * total)


PHASES = """
import sys, time, json, resource
def cpu():
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
t0 = time.perf_counter()
from pathlib import Path
from pipeline.config import load_settings
from pipeline.discord.extract import load, process
from pipeline.gcpause import gc_paused
config = load_settings().discord
t1, c1 = time.perf_counter(), cpu()
with gc_paused():
    prepared = load([Path(sys.argv[1])], config)
    t2, c2 = time.perf_counter(), cpu()
    kept, threading, counts = process(prepared, config)
    t3, c3 = time.perf_counter(), cpu()
print(json.dumps({"imports_s": t1 - t0, "load_s": t2 - t1, "filter_scrub_thread_s": t3 - t2,
                  "load_cpu_s": c2 - c1, "thread_cpu_s": c3 - c2,
                  "messages": prepared.corpus.report.messages_read, "kept": len(kept),
                  "conversations": len(threading.conversations)}))
"""


def _load_average() -> float:
    return os.getloadavg()[0]


def run(messages: int, runs: int) -> dict[str, Any]:
    python = sys.executable
    env_path = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = env_path + os.pathsep + os.environ.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-discord-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        files = generate_channel(root / "exports", messages)
        generate_s = time.perf_counter() - t
        size = sum(p.stat().st_size for p in files)
        os.sync()
        best: dict[str, Any] = {}
        for _ in range(runs):
            out, wall, peak = peak_rss_run([python, "-c", PHASES, str(root / "exports")])
            phases = json.loads(out.strip().splitlines()[-1])
            phases["wall_s"] = wall
            phases["peak_rss_mb"] = peak / 2**20
            work = phases["load_s"] + phases["filter_scrub_thread_s"]
            phases["extract_thread_s"] = work
            phases["extract_thread_msgs_per_s"] = phases["messages"] / work
            # the machine is shared: CPU seconds say what two dedicated cores would do. Workers decode
            # in parallel (load CPU / 2 at best); threading runs in the parent alone.
            dedicated = phases["load_cpu_s"] / 2 + phases["thread_cpu_s"]
            phases["two_dedicated_cores_msgs_per_s_estimate"] = phases["messages"] / dedicated
            phases["load_average_after"] = _load_average()
            if not best or work < best["phases"]["extract_thread_s"]:
                best["phases"] = phases
        personas = [str(Path(python).with_name("personas"))]
        data, profiles, train = root / "data", root / "profiles.json", root / "training.jsonl"
        extract_runs = []
        for _ in range(runs):
            _, wall, peak = peak_rss_run(
                [*personas, "-q", "discord", "extract", "--input", str(root / "exports"), "--out", str(data)]
            )
            extract_runs.append((wall, peak))
        wall, peak = min(extract_runs)
        best["extract_command"] = {"wall_s": wall, "msgs_per_s": messages / wall, "peak_rss_mb": peak / 2**20}
        _, users_s, users_peak = peak_rss_run(
            [*personas, "-q", "discord", "users", "--input", str(data), "--out", str(profiles)]
        )
        _, generate_wall, generate_peak = peak_rss_run(
            [
                *personas,
                "-q",
                "discord",
                "generate",
                "--input",
                str(data),
                "--profiles",
                str(profiles),
                "--out",
                str(train),
            ]
        )
        examples = sum(len(p.read_text().splitlines()) for p in root.glob("training*.jsonl"))
        end_to_end = wall + users_s + generate_wall
        best["end_to_end"] = {
            "extract_s": wall,
            "users_s": users_s,
            "generate_s": generate_wall,
            "total_s": end_to_end,
            "msgs_per_s": messages / end_to_end,
            "examples": examples,
            "peak_rss_mb": max(peak, users_peak, generate_peak) / 2**20,
        }
        return {
            "messages": messages,
            "files": len(files),
            "corpus_mb": size / 1e6,
            "generate_s": generate_s,
            **best,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    result = {**machine(), "results": [run(args.messages, args.runs)]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
