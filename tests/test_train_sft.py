"""SFT with LoRA on the real ChatML format, the train-flag loss mask, weighted SFT, export, eval, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datasets import Dataset, load_dataset
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.train.common import TrainingError
from pipeline.train.config import SFTRunConfig, ViralConfig, WeightedSFTConfig

pytestmark = pytest.mark.slow

TINY = {
    "max_length": 96,
    "batch_size": 4,
    "logging_steps": 1,
    "report_to": ["none"],
    "lora": {"r": 4, "alpha": 8},
}


def sft_config(tiny_model: Path, data: Path, out: Path, **kw: Any) -> SFTRunConfig:
    values: dict[str, Any] = {"base": str(tiny_model), "data": data, "out": out, "max_steps": 2, **TINY}
    values.update(kw)
    return SFTRunConfig(**values)


def test_loss_mask_is_exactly_the_trained_assistant_messages(
    tiny_model: Path, train_datasets: Path, tmp_path: Path
) -> None:
    from pipeline.train.sft import build_sft_trainer

    data = train_datasets / "chatml-multi-party"
    rows = load_dataset(str(data))["train"]
    # examples mixing trained and untrained assistant messages (branch masking), plus ordinary ones
    mixed = [
        i
        for i, row in enumerate(rows)
        if any(m["role"] == "assistant" and not m["train"] for m in row["messages"])
        and any(m["role"] == "assistant" and m["train"] for m in row["messages"])
    ][:6]
    assert mixed, "the small corpus has examples with context-only assistant messages"
    subset = rows.select(mixed)
    parquet = tmp_path / "mixed.parquet"
    subset.to_parquet(str(parquet))
    trainer = build_sft_trainer(
        sft_config(tiny_model, parquet, tmp_path / "run", max_length=4096, eval_split=None),
        show_progress=False,
    )
    tokenizer = trainer.processing_class
    prepared = trainer.train_dataset
    assert len(prepared) == len(subset)
    for source, row in zip(subset, prepared, strict=True):
        ids, labels = np.array(row["input_ids"]), np.array(row["labels"])
        learned = tokenizer.decode(ids[labels != -100].tolist())
        expected = "".join(
            m["content"] + "<|im_end|>\n"
            for m in source["messages"]
            if m["role"] == "assistant" and m["train"]
        )
        assert learned == expected
        untrained = [m["content"] for m in source["messages"] if m["role"] == "assistant" and not m["train"]]
        assert untrained and all(text in tokenizer.decode(ids.tolist()) for text in untrained)


def test_sft_lora_save_reload_merge_export_eval(
    tiny_model: Path, train_datasets: Path, tmp_path: Path
) -> None:
    import torch

    from pipeline.train.evaluate import evaluate, load_for_inference
    from pipeline.train.export import export_model
    from pipeline.train.sft import train_sft

    data = train_datasets / "chatml-two-party"
    out = tmp_path / "sft"
    result = train_sft(
        sft_config(tiny_model, data, out, max_steps=4, save_steps=2, learning_rate=5e-2, max_examples=32),
        show_progress=False,
    )
    assert result.metrics["global_step"] == 4
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(adapter_config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]
    assert adapter_config["r"] == 4
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    assert not list(out.glob(".final-*")), "the final files were moved into place, nothing left beside"
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
    ]
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1, 2, 3, 4]
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == "sft" and run["metrics"]["global_step"] == 4

    adapted, tokenizer = load_for_inference(out)
    base, _ = load_for_inference(tiny_model)
    ids = tokenizer("hello there, what do you think about meditation?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        adapter_logits = adapted(input_ids=ids).logits
        base_logits = base(input_ids=ids).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-4), "training changed nothing"

    merged_dir = export_model(out, tmp_path / "merged", merge=True)
    merged, _ = load_for_inference(merged_dir)
    with torch.no_grad():
        merged_logits = merged(input_ids=ids).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-5)

    vllm_dir = export_model(out, tmp_path / "adapter", merge=False)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "SERVE.md"} <= {
        p.name for p in vllm_dir.iterdir()
    }
    assert "--max-lora-rank 8" in (vllm_dir / "SERVE.md").read_text()

    on_adapter = evaluate(
        out, data, split="test", max_examples=12, prompts=2, max_new_tokens=4, show_progress=False
    )
    on_merged = evaluate(
        merged_dir, data, split="test", max_examples=12, prompts=2, max_new_tokens=4, show_progress=False
    )
    on_base = evaluate(
        tiny_model,
        data,
        split="test",
        out=tmp_path / "base-eval",
        max_examples=12,
        prompts=2,
        max_new_tokens=4,
        show_progress=False,
    )
    assert on_adapter.loss == pytest.approx(on_merged.loss, rel=1e-5)
    assert on_adapter.loss != pytest.approx(on_base.loss, rel=1e-4)
    assert on_adapter.perplexity == pytest.approx(np.exp(on_adapter.loss))
    saved = json.loads((out / "eval" / "test.json").read_text())
    assert saved["loss"] == pytest.approx(on_adapter.loss) and len(saved["generations"]) == 2
    assert [g["prompt"] for g in saved["generations"]] == [g["prompt"] for g in on_base.generations]


def test_sft_resumes_from_its_last_checkpoint(tiny_model: Path, train_datasets: Path, tmp_path: Path) -> None:
    from pipeline.train.sft import train_sft

    data, out = train_datasets / "chatml-two-party", tmp_path / "resume"
    train_sft(
        sft_config(tiny_model, data, out, max_steps=2, save_steps=2, max_examples=16, eval_split=None),
        show_progress=False,
    )
    first = (out / "metrics.jsonl").read_text().splitlines()
    result = train_sft(
        sft_config(tiny_model, data, out, max_steps=4, save_steps=2, max_examples=16, eval_split=None),
        show_progress=False,
    )
    added = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()[len(first) :]]
    assert [s["step"] for s in added if "loss" in s] == [3, 4]
    assert result.metrics["global_step"] == 4


def test_weighted_sft_with_unit_weights_equals_plain_sft(
    tiny_model: Path, train_datasets: Path, tmp_path: Path
) -> None:
    from pipeline.train.sft import build_sft_trainer
    from pipeline.train.weighted import build_viral, build_weighted_trainer

    viral = build_viral(ViralConfig(tweets=train_datasets / "tweets", out=tmp_path / "viral"))
    rows = load_dataset(str(viral.out))["train"].select(range(24))

    def losses(weights: list[float], weighted: bool, name: str) -> list[float]:
        path = tmp_path / f"{name}.parquet"
        rows.remove_columns(["weight"]).add_column("weight", weights).to_parquet(str(path))
        common: dict[str, Any] = {
            "base": str(tiny_model),
            "data": path,
            "out": tmp_path / name,
            "max_steps": 3,
            **TINY,
        }
        common["eval_split"] = None
        if weighted:
            trainer = build_weighted_trainer(WeightedSFTConfig(**common), show_progress=False)
        else:
            trainer = build_sft_trainer(SFTRunConfig(**common), show_progress=False)
        trainer.train()
        return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    plain = losses([1.0] * 24, weighted=False, name="plain")
    unit = losses([1.0] * 24, weighted=True, name="unit")
    double = losses([2.0] * 24, weighted=True, name="double")
    assert len(plain) == 3
    assert unit == pytest.approx(plain, rel=1e-6, abs=1e-7)
    assert double[0] == pytest.approx(2 * plain[0], rel=1e-6)


def test_viral_instruction_data(train_datasets: Path, tmp_path: Path) -> None:
    from pipeline.train.weighted import build_viral, style_of, topic_of

    summary = build_viral(ViralConfig(tweets=train_datasets / "tweets", out=tmp_path / "viral"))
    tweets = load_dataset(str(train_datasets / "tweets"))
    all_tweets = [row for split in tweets.values() for row in split]
    replies: dict[int, int] = {}
    for row in all_tweets:
        if row["parent_id"] is not None:
            replies[row["parent_id"]] = replies.get(row["parent_id"], 0) + 1
    by_id = {row["tweet_id"]: row for row in all_tweets}
    viral = load_dataset(str(summary.out))
    rows = [row for split in viral.values() for row in split]
    assert summary.skipped["reply"] > 0 and len(rows) == sum(summary.rows.values())
    weights = np.array([row["weight"] for row in rows])
    assert weights.mean() == pytest.approx(1.0) and weights.min() > 0
    for row in rows[:200]:
        source = by_id[row["tweet_id"]]
        assert source["parent_id"] is None and not source["parent_missing"]
        assert row["replies"] == replies.get(row["tweet_id"], 0)
        assert row["likes"] == source["favorite_count"] and row["impressions"] is None
        _system, user, assistant = row["messages"]
        assert assistant == {"role": "assistant", "content": source["body"].strip(), "train": True}
        assert row["topic"] in user["content"] and not user["train"]
    higher = sorted(rows, key=lambda r: r["quality"])
    assert higher[-1]["weight"] > higher[0]["weight"]
    assert topic_of("loving the new #Meditation retreat") == "meditation"
    assert style_of('is this real? <ref url="x"/>') == ["one-liner", "lowercase", "question", "with a link"]


def test_bad_inputs_are_clear_errors(tiny_model: Path, train_datasets: Path, tmp_path: Path) -> None:
    from pipeline.train.sft import train_sft
    from pipeline.train.weighted import build_weighted_trainer

    with pytest.raises(TrainingError, match="did you mean"):
        train_sft(sft_config(tiny_model, train_datasets / "chatml", tmp_path / "x"), show_progress=False)
    with pytest.raises(TrainingError, match="no split"):
        train_sft(
            sft_config(tiny_model, train_datasets / "chatml-two-party", tmp_path / "x", split="nope"),
            show_progress=False,
        )
    with pytest.raises(TrainingError, match="messages"):
        train_sft(sft_config(tiny_model, train_datasets / "prefs", tmp_path / "x"), show_progress=False)
    no_weight = tmp_path / "noweight.parquet"
    Dataset.from_list(
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    ).to_parquet(str(no_weight))
    with pytest.raises(TrainingError, match="weight"):
        build_weighted_trainer(
            WeightedSFTConfig(
                base=str(tiny_model), data=no_weight, out=tmp_path / "w", eval_split=None, **TINY
            ),
            show_progress=False,
        )


def test_cli_train_sft_export_eval(tiny_model: Path, train_datasets: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    data, run = train_datasets / "chatml-two-party", tmp_path / "cli-run"
    common = ["--base", str(tiny_model), "--max-length", "96", "--report-to", "tensorboard", "--lora-r", "4"]
    result = runner.invoke(
        app,
        [
            "train",
            "sft",
            "--data",
            str(data),
            "--out",
            str(run),
            "--max-steps",
            "2",
            "--max-examples",
            "16",
            *common,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "global step" in result.output and json.loads((run / "adapter_config.json").read_text())["r"] == 4
    assert list((run / "logs").glob("events.out.tfevents.*")), "tensorboard logs are written under <run>/logs"
    result = runner.invoke(
        app, ["train", "export", "--adapter", str(run), "--out", str(tmp_path / "m"), "--merge"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(tmp_path / "m"),
            "--data",
            str(data),
            "--max-examples",
            "8",
            "--prompts",
            "1",
            "--max-new-tokens",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "m" / "eval" / "test.json").read_text())["examples"] == 8
    result = runner.invoke(app, ["train", "sft", "--data", str(tmp_path / "absent"), *common])
    assert result.exit_code == 2 and "no dataset" in result.output


def test_the_cli_and_data_pipeline_do_not_import_the_training_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pipeline.cli, pipeline.datasets.build, pipeline.train.config, pipeline.train.presets; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_packing_keeps_the_train_flag_mask(tiny_model: Path, train_datasets: Path, tmp_path: Path) -> None:
    from pipeline.train.sft import build_sft_trainer

    data = train_datasets / "chatml-multi-party"

    def labelled(packing: bool) -> tuple[int, int]:
        config = sft_config(
            tiny_model,
            data,
            tmp_path / str(packing),
            max_length=4096,
            max_examples=24,
            eval_split=None,
            packing=packing,
        )
        prepared = build_sft_trainer(config, show_progress=False).train_dataset
        return len(prepared), sum(int((np.array(row["labels"]) != -100).sum()) for row in prepared)

    rows_plain, tokens_plain = labelled(False)
    rows_packed, tokens_packed = labelled(True)
    assert rows_packed < rows_plain, "packing put several examples in one row"
    assert tokens_packed == tokens_plain > 0, "the same tokens are learned, packed or not"
