"""Remote fine-tuning (Together.ai API) against a loopback stand-in: export, upload, create, poll, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_dataset
from pydantic import SecretStr
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.train.config import RemoteConfig
from pipeline.train.remote import RemoteError, TogetherFineTuning, export_jsonl, submit
from tests.support.together import TogetherStandIn, serve

pytestmark = pytest.mark.network_loopback


def config(url: str, **kw: object) -> RemoteConfig:
    values: dict[str, object] = {
        "base_url": url,
        "api_key": SecretStr("test-together-key"),
        "poll_s": 0.01,
        "max_attempts": 3,
    }
    values.update(kw)
    return RemoteConfig(**values)  # type: ignore[arg-type]


def test_jsonl_weights_follow_train_flags(train_datasets: Path, tmp_path: Path) -> None:
    data = train_datasets / "chatml-multi-party"
    n = export_jsonl(data, "train", tmp_path / "x.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    source = load_dataset(str(data))["train"]
    assert n == len(lines) == len(source)
    for line, row in zip(lines, source, strict=True):
        assert [m["content"] for m in line["messages"]] == [m["content"] for m in row["messages"]]
        assert [m["weight"] for m in line["messages"]] == [
            int(m["role"] == "assistant" and m["train"]) for m in row["messages"]
        ]


def test_submit_and_wait(train_datasets: Path, tmp_path: Path) -> None:
    standin = TogetherStandIn()
    standin.faults = [503, 429]  # the upload is retried through both
    with serve(standin) as url:
        job = submit(config(url, model="Qwen/Qwen2.5-7B-Instruct", epochs=2), train_datasets / "chatml-two-party",
                     work_dir=tmp_path, wait=True, suffix="tpot", max_examples=10, show_progress=False)  # fmt: skip
    assert (
        job.status == "completed"
        and job.output_name
        and job.output_name.startswith("user/Qwen2.5-7B-Instruct-")
    )
    (uploaded,) = standin.files.values()
    assert len(uploaded["lines"]) == 10
    (payload,) = standin.jobs.values()
    assert (
        payload["model"] == "Qwen/Qwen2.5-7B-Instruct"
        and payload["n_epochs"] == 2
        and payload["suffix"] == "tpot"
    )
    assert payload["training_type"] == {"type": "Lora"}
    assert [r for r in standin.requests if r[0] == "POST"] == [("POST", "/v1/files")] * 3 + [
        ("POST", "/v1/fine-tunes")
    ]
    assert standin.polls[job.id] == 3
    record = json.loads((tmp_path / "job.json").read_text())
    assert record["status"] == "completed" and record["examples"] == 10


def test_failures_are_clear(train_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    with pytest.raises(RemoteError, match="TOGETHER_API_KEY"):
        TogetherFineTuning(RemoteConfig())
    standin = TogetherStandIn(statuses=("running", "error"))
    with serve(standin) as url:
        with (
            TogetherFineTuning(config(url, api_key=SecretStr("wrong"))) as api,
            pytest.raises(RemoteError, match="401"),
        ):
            api.status("ft-x")
        with pytest.raises(RemoteError, match="status error"):
            submit(
                config(url),
                train_datasets / "chatml-two-party",
                work_dir=tmp_path,
                wait=True,
                max_examples=4,
                show_progress=False,
            )
        standin.faults = [500, 500, 500]
        with TogetherFineTuning(config(url)) as api, pytest.raises(RemoteError, match="after 3 attempts"):
            api.status("ft-x")


def test_cli_remote_reads_the_key_from_the_environment(
    train_datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin = TogetherStandIn(api_key="env-secret-key")
    monkeypatch.setenv("TOGETHER_API_KEY", "env-secret-key")
    with serve(standin) as url:
        monkeypatch.setenv("PERSONAS_TRAIN__REMOTE__BASE_URL", url)
        monkeypatch.setenv("PERSONAS_TRAIN__REMOTE__POLL_S", "0.01")
        result = CliRunner().invoke(app, ["-v", "train", "remote", "--data", str(train_datasets / "chatml-two-party"),
                                          "--work-dir", str(tmp_path), "--max-examples", "5", "--wait"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "completed" in result.output and "env-secret-key" not in result.output
    assert standin.authorizations == {"Bearer env-secret-key"}
