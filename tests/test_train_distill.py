"""Reverse distillation: two tiny teacher bots served on loopback (OpenAI-compatible), a student learns them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.train.tiny import build_tiny_model
from tests.support.chat_server import ChatServer, serve

pytestmark = [pytest.mark.slow, pytest.mark.network_loopback]


def test_distill_two_teachers_into_a_student(
    tiny_model: Path, train_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = build_tiny_model(tmp_path / "bot-b", seed=1)
    server = ChatServer({"bot-a": tiny_model, "bot-b": other})
    with serve(server) as url:
        monkeypatch.setenv("PERSONAS_INFERENCE__BASE_URL", url)
        result = CliRunner().invoke(
            app,
            ["train", "distill", "--teachers", "bot-a,bot-b", "--student", str(tiny_model),
             "--prompts", str(train_datasets / "chatml-two-party"), "--max-prompts", "3", "--max-tokens", "6",
             "--out", str(tmp_path / "student"), "--max-steps", "2", "--batch-size", "2", "--max-length", "512",
             "--lora-r", "4", "--report-to", "none"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = load_dataset(str(tmp_path / "student" / "data"))["train"]
    assert sorted(set(data["teacher"])) == ["bot-a", "bot-b"]
    assert len(server.requests) == 6 and {r["model"] for r in server.requests} == {"bot-a", "bot-b"}
    assert all(r["max_tokens"] == 6 for r in server.requests)
    for row in data:
        *context, reply = row["messages"]
        assert reply["role"] == "assistant" and reply["train"] and reply["content"]
        assert not any(m["train"] for m in context)
    by_teacher = {
        t: [r["messages"][-1]["content"] for r in data if r["teacher"] == t] for t in ("bot-a", "bot-b")
    }
    assert by_teacher["bot-a"] != by_teacher["bot-b"], "two different teachers answer differently"
    run = json.loads((tmp_path / "student" / "run.json").read_text())
    assert run["metrics"]["global_step"] == 2 and (tmp_path / "student" / "adapter_config.json").is_file()
