"""Online RL from engagement: GRPO or RLOO (TRL) with our reward functions.

Rewards (mixed with `reward_weights`):
- `reward-model`: the sequence-classification model of `personas train reward`;
- `engagement-model`: a ridge regression from a post's text features to its engagement percentile,
  fit on observed (post, engagement) rows. Engagement is normalized with pipeline.scoring's
  t-digest percentiles, against a build's digests when given (the same history the datasets
  were scored on) or else against the rows themselves;
- `format`: -1 for an empty post or one leaking chat markup or the system template, else 0;
- `length`: 0 inside the target character range, falling linearly to -1 at twice the distance.

Rows are what the X environment stores: `prompt` (a string or a list of messages), `output` (the
post), `engagement` (a number of likes, or a mapping with likes/retweets/followers). Rows without
`output`/`engagement` are prompts only. PPO is not offered: TRL removed it in 1.13 (README).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from pipeline.scoring import StreamingScorer
from pipeline.store.atomic import atomic_write_bytes
from pipeline.train.common import (
    TrainingError,
    callbacks,
    load_causal_lm,
    load_split,
    load_tokenizer,
    lora_config,
    run_trainer,
    save_final,
    trl_args,
    write_run,
)
from pipeline.train.config import RLRunConfig
from pipeline.train.sft import TrainResult

FEATURES = 256
"""Hashed word buckets; plus length, question, link and hashtag features."""
LEAKS = re.compile(
    r"<\|im_(start|end)\|>|<\|endoftext\|>|^(user|assistant|system)\s*:|User is .+ Assistant is", re.I | re.M
)


def completion_text(completion: Any) -> str:
    """A TRL completion as text: a string, or conversational [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content") or "") for message in completion)


def features(text: str) -> np.ndarray:
    vector = np.zeros(FEATURES + 4)
    for word in re.findall(r"[#@]?\w+", text.lower()):
        bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % FEATURES
        vector[bucket] += 1.0
    norm = np.linalg.norm(vector[:FEATURES])
    if norm:
        vector[:FEATURES] /= norm
    vector[FEATURES] = math.log1p(len(text)) / 6
    vector[FEATURES + 1] = float("?" in text)
    vector[FEATURES + 2] = float("http" in text or "<ref" in text)
    vector[FEATURES + 3] = float("#" in text)
    return vector


def engagement_signals(value: Any) -> tuple[float, float, float]:
    """(likes, retweets, followers) from a row's `engagement`; NaN where unknown."""
    if isinstance(value, Mapping):

        def get(key: str) -> float:
            v = value.get(key)
            return float(v) if v is not None else math.nan

        return get("likes"), get("retweets"), get("followers")
    return float(value), math.nan, math.nan


class EngagementModel:
    """Ridge regression from text features to the engagement percentile (0-1)."""

    def __init__(self, weights: np.ndarray, bias: float):
        self.weights = weights
        self.bias = bias

    @classmethod
    def fit(
        cls,
        texts: list[str],
        engagement: list[Any],
        *,
        scorer: StreamingScorer | None = None,
        ridge: float = 1.0,
    ) -> tuple[EngagementModel, np.ndarray]:
        """Fit on (post, engagement) rows; returns the model and the normalized targets."""
        if len(texts) < 2:
            raise TrainingError("an engagement model needs at least two rows with `output` and `engagement`")
        likes, retweets, followers = (
            np.array(column) for column in zip(*map(engagement_signals, engagement), strict=True)
        )
        signals = {
            "likes": likes,
            "retweets": retweets,
            "followers": followers,
            "length": np.array([float(len(t)) for t in texts]),
        }
        if scorer is None:  # percentiles against the rows themselves
            scorer = StreamingScorer(chunk=len(texts))
            scorer.score(signals, update=True)
        target = scorer.score(signals, update=False).quality
        target = np.where(np.isnan(target), 0.5, target)
        x = np.stack([features(t) for t in texts])
        mean = target.mean()
        weights = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ (target - mean))
        return cls(weights, float(mean)), target

    def predict(self, texts: list[str]) -> np.ndarray:
        x = np.stack([features(t) for t in texts])
        return np.clip(x @ self.weights + self.bias, 0.0, 1.0)

    def save(self, path: Path) -> None:
        atomic_write_bytes(
            path,
            orjson.dumps(
                {
                    "kind": "ridge-hashed-words",
                    "features": FEATURES,
                    "bias": self.bias,
                    "weights": self.weights.tolist(),
                }
            ),
        )

    @classmethod
    def load(cls, path: Path) -> EngagementModel:
        try:
            data = orjson.loads(Path(path).read_bytes())
            if data.get("features") != FEATURES:
                raise TrainingError(
                    f"{path} was fit with {data.get('features')} features, this code uses {FEATURES}"
                )
            return cls(np.array(data["weights"], dtype=np.float64), float(data["bias"]))
        except (OSError, orjson.JSONDecodeError, KeyError) as exc:
            raise TrainingError(f"cannot read engagement model {path}: {exc}") from exc


def engagement_reward(model: EngagementModel) -> Callable[..., list[float]]:
    def engagement_model(completions: list[Any], **kwargs: Any) -> list[float]:
        return [float(v) for v in model.predict([completion_text(c) for c in completions])]

    return engagement_model


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """-1 for an empty post or one leaking chat markup / the system template; else 0."""
    return [
        -1.0 if not completion_text(c).strip() or LEAKS.search(completion_text(c)) else 0.0
        for c in completions
    ]


def length_reward(low: int, high: int) -> Callable[..., list[float]]:
    def length(completions: list[Any], **kwargs: Any) -> list[float]:
        rewards = []
        for completion in completions:
            n = len(completion_text(completion).strip())
            if low <= n <= high:
                rewards.append(0.0)
            else:
                distance = (low - n) / max(low, 1) if n < low else (n - high) / max(high, 1)
                rewards.append(-min(1.0, distance))
        return rewards

    return length


def load_rows(path: Path, max_examples: int | None = None) -> Any:
    """The RL table: a JSONL/Parquet file or a dataset folder with at least `prompt`."""
    rows = load_split(path, "train", max_examples)
    if "prompt" not in rows.column_names:
        raise TrainingError(f"{path} has no `prompt` column (columns: {rows.column_names})")
    return rows


def as_messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m.get("content") or ""} for m in prompt]


def fit_from_rows(rows: Any, digests: Path | None) -> EngagementModel:
    if "output" not in rows.column_names or "engagement" not in rows.column_names:
        raise TrainingError(
            "fitting an engagement model needs `output` and `engagement` columns (or pass --engagement-model)"
        )
    observed = [(r["output"], r["engagement"]) for r in rows if r["output"] and r["engagement"] is not None]
    skipped = len(rows) - len(observed)
    if skipped:
        import logging

        logging.getLogger("pipeline.train").info(
            "engagement model: %d row(s) without output or engagement skipped", skipped
        )
    scorer = StreamingScorer.load(digests) if digests else None
    model, _ = EngagementModel.fit([t for t, _ in observed], [e for _, e in observed], scorer=scorer)
    return model


def reward_functions(config: RLRunConfig, rows: Any) -> tuple[list[Any], list[float]]:
    funcs: list[Any] = []
    for name in config.rewards:
        if name == "reward-model":
            if config.reward_model is None or not Path(config.reward_model).is_dir():
                raise TrainingError(
                    "--reward reward-model needs --reward-model <folder from `personas train reward`>"
                )
            funcs.append(str(config.reward_model))
        elif name == "engagement-model":
            if config.engagement_model is not None:
                model = EngagementModel.load(config.engagement_model)
            else:
                model = fit_from_rows(rows, config.digests)
                model.save(Path(config.out) / "engagement.json")
            funcs.append(engagement_reward(model))
        elif name == "format":
            funcs.append(format_reward)
        elif name == "length":
            funcs.append(length_reward(*config.target_chars))
    weights = config.reward_weights or [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise TrainingError(f"{len(weights)} reward weights for {len(funcs)} rewards")
    return funcs, weights


def train_rl(config: RLRunConfig, show_progress: bool = True) -> TrainResult:
    """GRPO or RLOO on the prompts with the configured rewards; saves the adapter and run.json."""
    rows = load_rows(config.prompts, config.max_examples)
    funcs, weights = reward_functions(config, rows)
    prompts = rows.select_columns(["prompt"]).map(lambda r: {"prompt": as_messages(r["prompt"])})
    tokenizer = load_tokenizer(config.base)
    tokenizer.padding_side = "left"  # generation pads on the left
    model = load_causal_lm(config.base, config.precision, adapter=config.adapter)
    common: dict[str, Any] = dict(
        num_generations=config.num_generations, max_completion_length=config.max_completion_length,
        beta=config.beta, temperature=config.temperature, reward_weights=weights,
    )  # fmt: skip
    if config.algorithm == "grpo":
        from trl import GRPOConfig as ArgsClass
        from trl import GRPOTrainer as TrainerClass
    else:
        from trl import RLOOConfig as ArgsClass  # type: ignore[assignment]
        from trl import RLOOTrainer as TrainerClass  # type: ignore[assignment]
    args = trl_args(config, ArgsClass, **common)
    trainer = TrainerClass(
        model=model,
        reward_funcs=funcs,
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        peft_config=None if config.adapter is not None else lora_config(config.lora),
        callbacks=callbacks(config, show_progress),
    )
    metrics = run_trainer(trainer, config)

    def save(folder: Path) -> None:
        trainer.save_model(str(folder))
        tokenizer.save_pretrained(str(folder))

    save_final(config.out, save)
    rewards = {
        k: v
        for entry in trainer.state.log_history
        for k, v in entry.items()
        if k.startswith("rewards/") or k == "reward"
    }
    write_run(config, f"rl-{config.algorithm}", {**metrics, **rewards})
    return TrainResult(Path(config.out), {**metrics, **rewards})
