"""`personas chat`, `personas persona build`, `personas serve` (its failure path) from the command line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.persona import Persona
from pipeline.serving import ServeConfig, ServeError, VllmServer
from pipeline.store import Store
from tests.support.openai_server import OpenAIStandIn, serve_openai

runner = CliRunner()


def _speaker(body: dict[str, Any]) -> str:
    match = re.match(r"You are (.+?)\.", body["messages"][0]["content"])
    return match.group(1) if match else "?"


@pytest.mark.network_loopback
def test_persona_build_then_chat_end_to_end(small_store: Store, tmp_path: Path) -> None:
    handles = [r[0] for r in small_store.connect().execute(
        "SELECT username FROM tweets GROUP BY 1 ORDER BY count(*) DESC LIMIT 3"
    ).fetchall()]  # fmt: skip
    personas = tmp_path / "personas"
    for handle in handles[:2]:
        result = runner.invoke(
            app,
            [
                "--store",
                str(small_store.root),
                "persona",
                "build",
                "--account",
                handle,
                "--out",
                str(personas / f"{handle}.json"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"{handle}.json" in result.output
    names = [Persona.load(personas / f"{h}.json").name for h in handles[:2]]
    counter = {"n": 0}

    def reply(body: dict[str, Any]) -> str:
        counter["n"] += 1
        return f"{_speaker(body)} turn {counter['n']}"

    out = tmp_path / "chat.jsonl"
    with serve_openai(OpenAIStandIn(reply=reply)) as server:
        args = [
            "--store", str(small_store.root), "chat", "--personas", ",".join(handles),  # the third has no file: built from the store
            "--topic", "is scaling enough?", "--rounds", "2", "--base-url", server.base_url,
            "--model", "tiny-base", "--persona-dir", str(personas), "--out", str(out),
        ]  # fmt: skip
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["topic"] == "is scaling enough?" and lines[0]["stop_reason"] == "2 rounds"
    turns = lines[1:]
    assert len(turns) == 6 and [t["text"] for t in turns] == [
        f"{t['speaker']} turn {i + 1}" for i, t in enumerate(turns)
    ]
    assert [t["speaker"] for t in turns[:2]] == names
    assert "6 turns, stopped: 2 rounds" in result.output and f"{names[0]} (round 1" in result.output


def test_chat_reports_a_down_server(small_store: Store, tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    for name in ("a", "b"):
        Persona(name=name.upper()).save(tmp_path / "p" / f"{name}.json")
    result = runner.invoke(
        app,
        ["chat", "--personas", "a,b", "--topic", "t", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
         "--persona-dir", str(tmp_path / "p"), "--out", str(tmp_path / "c.jsonl")],
        env={"PERSONAS_INFERENCE__MAX_RETRIES": "0"},
    )  # fmt: skip
    assert result.exit_code == 1 and "stopped: model error" in result.output
    result = runner.invoke(
        app, ["chat", "--personas", "a", "--topic", "t", "--persona-dir", str(tmp_path / "p")]
    )
    assert result.exit_code == 2 and "at least two personas" in result.output


def test_serve_fails_clearly_without_vllm(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    config = ServeConfig(
        model=str(tmp_path / "model"), python=sys.executable, port=18765, log_file=tmp_path / "vllm.log"
    )
    with (
        pytest.raises(ServeError, match=r"(?s)vLLM exited with code 1 before it was ready.*No module named"),
        VllmServer(config),
    ):
        pass
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    bad = config.model_copy(update={"adapters": {"tpot": str(adapter)}})
    with pytest.raises(ServeError, match=r"holds no adapter_config\.json"):
        VllmServer(bad).start()
    result = runner.invoke(
        app,
        ["serve", "--model", str(tmp_path / "model"), "--python", sys.executable, "--port", "18766"],
        env={"PERSONAS_SERVE__LOG_FILE": str(tmp_path / "cli.log")},
    )
    assert result.exit_code == 2 and "vLLM exited with code 1" in result.output


def test_vllm_command_line_and_environment() -> None:
    from pipeline.serving import vllm_command, vllm_env

    config = ServeConfig(
        python="/envs/vllm/bin/python", model="models/tpot-1.5b", adapters={"tpot": "runs/sft", "dpo": "runs/dpo"},
        port=8123, dtype="float32", enforce_eager=True, cpu_kvcache_space_gib=4, max_model_len=2048,
    )  # fmt: skip
    cmd = vllm_command(config)
    assert cmd[:3] == ["/envs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--served-model-name") + 1] == "tpot-1.5b"
    assert cmd[cmd.index("--lora-modules") + 1 : cmd.index("--lora-modules") + 3] == [
        "tpot=runs/sft",
        "dpo=runs/dpo",
    ]
    assert "--enable-lora" in cmd and "--enforce-eager" in cmd and cmd[cmd.index("--port") + 1] == "8123"
    env = vllm_env(config, {"PATH": "/bin"})
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True" and env["VLLM_CPU_KVCACHE_SPACE"] == "4"
    with pytest.raises(ServeError, match="no model to serve"):
        vllm_command(ServeConfig())
