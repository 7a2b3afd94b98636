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


def test_viral_instructions_backtranslated_through_the_inference_client(
    tiny_model: Path, train_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tweets = load_dataset(str(train_datasets / "tweets"))["train"]
    top_level = [
        t for t in tweets if t["parent_id"] is None and not t["parent_missing"] and len(t["body"]) >= 20
    ]
    account = min(
        {t["username"] for t in top_level}, key=lambda u: sum(t["username"] == u for t in top_level)
    )
    server = ChatServer({"writer": tiny_model})
    with serve(server) as url:
        monkeypatch.setenv("PERSONAS_INFERENCE__BASE_URL", url)
        result = CliRunner().invoke(
            app,
            ["train", "viral", "--tweets", str(train_datasets / "tweets"), "--accounts", account,
             "--backtranslate", "writer", "--out", str(tmp_path / "viral")],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [row for split in load_dataset(str(tmp_path / "viral")).values() for row in split]
    assert rows and len(server.requests) == len(rows)
    asked = [r["messages"][0]["content"] for r in server.requests]
    assert all(any(f"Tweet: {row['messages'][2]['content']}" in q for q in asked) for row in rows)
    written = [row for row in rows if row["instruction_source"] == "backtranslated:writer"]
    assert written, "the model's answers became the instructions"
    for row in written:
        assert (
            row["messages"][1]["content"] and row["messages"][1]["content"] != row["messages"][2]["content"]
        )
