"""DPO, the reward model and online RL (GRPO/RLOO) with our reward functions, on tiny models and real formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.scoring import StreamingScorer
from pipeline.train.common import TrainingError
from pipeline.train.config import DPORunConfig, RewardRunConfig, RLRunConfig, SFTRunConfig

pytestmark = pytest.mark.slow

TINY: dict[str, Any] = {
    "max_length": 384,
    "batch_size": 4,
    "logging_steps": 1,
    "report_to": ["none"],
    "lora": {"r": 4, "alpha": 8},
    "max_steps": 2,
}

ROWS = [  # the X environment's shape: prompt, output, engagement (a number or counts)
    {
        "prompt": "Write a tweet about meditation.",
        "output": "jhana is just attention with the brakes off",
        "engagement": {"likes": 120, "retweets": 10, "followers": 900},
    },
    {
        "prompt": "Write a tweet about bread.",
        "output": "bread",
        "engagement": {"likes": 1, "retweets": 0, "followers": 900},
    },
    {
        "prompt": "Write a tweet about friends.",
        "output": "what makes a friend stay? genuinely asking",
        "engagement": 40,
    },
    {"prompt": "Write a tweet about soup.", "output": "soup soup soup", "engagement": 2},
    {
        "prompt": [
            {"role": "system", "content": "Assistant is @a."},
            {"role": "user", "content": "Post on gpt."},
        ],
        "output": None,
        "engagement": None,
    },
]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def reward_model(tiny_model: Path, train_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pipeline.train.reward import train_reward

    out = tmp_path_factory.mktemp("rm") / "rm"
    result = train_reward(
        RewardRunConfig(base=str(tiny_model), data=train_datasets / "prefs", out=out, **TINY),
        show_progress=False,
    )
    assert result.metrics["global_step"] == 2
    return out


def test_reward_model_scores_pairs(reward_model: Path, train_datasets: Path) -> None:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(reward_model))  # no base needed
    tokenizer = AutoTokenizer.from_pretrained(str(reward_model))
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    pair = load_dataset(str(train_datasets / "prefs"))["train"][0]
    texts = [
        tokenizer.apply_chat_template(pair["prompt"] + pair[side], tokenize=False)
        for side in ("chosen", "rejected")
    ]
    with torch.no_grad():
        scores = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits
    assert scores.shape == (2, 1) and torch.isfinite(scores).all()
    run = json.loads((reward_model / "run.json").read_text())
    assert run["method"] == "reward" and run["config"]["use_margin"] is True


def test_dpo_on_top_of_an_sft_adapter(tiny_model: Path, train_datasets: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from pipeline.train.dpo import train_dpo
    from pipeline.train.sft import train_sft

    sft = train_sft(
        SFTRunConfig(
            base=str(tiny_model),
            data=train_datasets / "chatml-two-party",
            out=tmp_path / "sft",
            max_examples=16,
            eval_split=None,
            **{**TINY, "max_length": 96},
        ),
        show_progress=False,
    ).out
    result = train_dpo(
        DPORunConfig(
            base=str(tiny_model),
            data=train_datasets / "prefs",
            out=tmp_path / "dpo",
            adapter=sft,
            learning_rate=1e-2,
            **TINY,
        ),
        show_progress=False,
    )
    assert result.metrics["global_step"] == 2
    assert any(k.startswith("rewards/") for k in result.metrics)
    before, after = (
        load_file(str(sft / "adapter_model.safetensors")),
        load_file(str(result.out / "adapter_model.safetensors")),
    )
    assert set(before) == set(after), "the DPO adapter is the SFT adapter, without the frozen reference copy"
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before)


def test_engagement_model_learns_the_ordering_of_a_hand_made_table() -> None:
    from pipeline.train.rl import EngagementModel, engagement_signals

    texts = [f"{'great insight about attention and meditation ' if i % 2 else 'meh '}{i}" for i in range(40)]
    likes = [100 + i if i % 2 else i % 3 for i in range(40)]
    model, target = EngagementModel.fit(texts, likes)
    assert target[1] > target[0] and target.min() >= 0 and target.max() <= 1
    scorer = StreamingScorer(chunk=40)
    scorer.score(
        {
            "likes": np.array(likes, float),
            "retweets": np.full(40, np.nan),
            "followers": np.full(40, np.nan),
            "length": np.array([len(t) for t in texts], float),
        }
    )
    assert target == pytest.approx(
        scorer.score(
            {
                "likes": np.array(likes, float),
                "retweets": np.full(40, np.nan),
                "followers": np.full(40, np.nan),
                "length": np.array([len(t) for t in texts], float),
            },
            update=False,
        ).quality
    )
    good, bad = model.predict(["great insight about attention and meditation", "meh"])
    assert good > bad + 0.2
    assert engagement_signals({"likes": 3, "followers": 10}) == (
        3.0,
        pytest.approx(np.nan, nan_ok=True),
        10.0,
    )
    with pytest.raises(TrainingError, match="two rows"):
        EngagementModel.fit(["one"], [1])


def test_format_and_length_rewards() -> None:
    from pipeline.train.rl import format_reward, length_reward

    completions = [
        [{"role": "assistant", "content": "a fine post"}],
        "",
        "x <|im_start|>user",
        "User is a. Assistant is b.",
    ]
    assert format_reward(completions) == [0.0, -1.0, -1.0, -1.0]
    length = length_reward(10, 20)
    assert length(["0123456789", "x" * 20, "x" * 5, "x" * 30, "x" * 100]) == [0.0, 0.0, -0.5, -0.5, -1.0]


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_rl_step_with_our_rewards(
    algorithm: str, tiny_model: Path, reward_model: Path, train_datasets: Path, tmp_path: Path
) -> None:
    from pipeline.train.rl import EngagementModel, train_rl

    rows = write_rows(tmp_path / "rows.jsonl", ROWS)
    result = train_rl(
        RLRunConfig(
            base=str(tiny_model), prompts=rows, out=tmp_path / algorithm, algorithm=algorithm,  # type: ignore[arg-type]
            rewards=["reward-model", "engagement-model", "format", "length"], reward_model=reward_model,
            digests=train_datasets / "scores" / "digests.json", num_generations=2, max_completion_length=8, **TINY,
        ),
        show_progress=False,
    )  # fmt: skip
    assert result.metrics["global_step"] == 2
    for name in ("rm", "engagement_model", "format_reward", "length"):
        assert np.isfinite(result.metrics[f"rewards/{name}/mean"])
    assert 0 <= result.metrics["rewards/engagement_model/mean"] <= 1
    assert EngagementModel.load(result.out / "engagement.json").weights.shape[0] > 0
    assert (result.out / "adapter_config.json").is_file()


def test_rl_cli_and_bad_tables(tiny_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    rows = write_rows(tmp_path / "rows.jsonl", ROWS)
    args = ["train", "rl", "--prompts", str(rows), "--base", str(tiny_model), "--out", str(tmp_path / "rl"), "--max-steps", "1",
            "--num-generations", "2", "--max-completion-length", "4", "--batch-size", "2", "--lora-r", "4", "--report-to", "none"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "rewards/engagement_model/mean" in result.output
    prompts_only = write_rows(tmp_path / "prompts.jsonl", [{"prompt": "hi"}, {"prompt": "yo"}])
    result = runner.invoke(app, [*args[:3], str(prompts_only), *args[4:]])
    assert result.exit_code == 2 and "engagement" in result.output
    result = runner.invoke(app, [*args, "--reward", "reward-model"])
    assert result.exit_code == 2 and "--reward-model" in result.output
    no_prompt = write_rows(tmp_path / "bad.jsonl", [{"text": "x"}])
    result = runner.invoke(app, [*args[:3], str(no_prompt), *args[4:]])
    assert result.exit_code == 2 and "prompt" in result.output
