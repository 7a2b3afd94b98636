"""The viral-tweet recipe: instruction/response pairs from top-level tweets, and engagement-weighted SFT.

**Data.** Each top-level tweet (not a reply) of the chosen accounts becomes one example: a system
line naming the author, an instruction written from templates over the tweet's topic and style
labels, and the tweet as the response. Engagement travels along: likes, retweets, replies
(counted from the reply trees in the dataset), impressions when known (the archive has none), and
the quality score `personas build` computed with the streaming t-digests of pipeline.scoring.

**Weight.** `weight = floor + (1 - floor) * quality ** power`, rescaled to mean 1 so the learning
rate means what it means for plain SFT. Tweets without a score get the mean weight (1).

**Loss.** `sum_t w_i * nll_it / tokens`: with every weight 1 this is exactly SFTTrainer's loss
(tests/test_train_sft.py checks it). Longer tweets weigh more through their token count, as in
plain SFT. Packing mixes examples in one row, so it is refused here.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.datasets.card import CardSpec
from pipeline.datasets.writer import DatasetWriter
from pipeline.progress import progress_task
from pipeline.text import STOPWORDS
from pipeline.train.common import Generator, TrainingError, load_split
from pipeline.train.config import ViralConfig, WeightedSFTConfig
from pipeline.train.sft import TrainResult, build_sft_trainer, finish

TEMPLATES = (
    "Write a {style} tweet about {topic}.",
    "Post something {style} on {topic}.",
    "Tweet about {topic}. Keep it {style}.",
    "Share a {style} take on {topic}.",
)
WORD = re.compile(r"[#@]?[A-Za-z][A-Za-z'\-]{2,}")

VIRAL_SCHEMA = pa.schema(
    [
        pa.field(
            "messages",
            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_())])),
        ),
        pa.field("tweet_id", pa.int64()),
        pa.field("username", pa.string()),
        pa.field("topic", pa.string()),
        pa.field("style", pa.list_(pa.string())),
        pa.field("likes", pa.int64()),
        pa.field("retweets", pa.int64()),
        pa.field("replies", pa.int64()),
        pa.field("impressions", pa.int64()),
        pa.field("quality", pa.float64()),
        pa.field("weight", pa.float64()),
        pa.field("instruction_source", pa.string()),
    ]
)
VIRAL_FIELDS = {
    "messages": "system (author), user (instruction from topic and style), assistant (the tweet, trained)",
    "tweet_id": "source tweet",
    "username": "author",
    "topic": "hashtag, else the tweet's most telling word",
    "style": "style labels: length, casing, question, link, media, emoji, thread",
    "likes": "likes when the archive was taken",
    "retweets": "retweets when the archive was taken",
    "replies": "replies to it in the dataset's reply trees",
    "impressions": "impressions when known (null: the archive does not carry them)",
    "quality": "composite engagement percentile from `personas build` (streaming t-digests)",
    "weight": "loss weight from normalized engagement, mean 1",
    "instruction_source": "`template`, or `backtranslated:<model>` when a model wrote the instruction",
}


def topic_of(text: str) -> str:
    tags = re.findall(r"#(\w+)", text)
    if tags:
        return tags[0].lower()
    words = [w.lower().strip("'-") for w in WORD.findall(text) if not w.startswith("@")]
    words = [w for w in words if w not in STOPWORDS]
    if not words:
        return "anything"
    counts = Counter(words)
    return max(words, key=lambda w: (counts[w], len(w)))


def style_of(text: str) -> list[str]:
    labels = ["one-liner" if len(text) < 80 else "short" if len(text) < 180 else "long"]
    letters = [c for c in text if c.isalpha()]
    if letters and all(c.islower() for c in letters):
        labels.append("lowercase")
    if "?" in text:
        labels.append("question")
    if "<ref" in text or "http" in text:
        labels.append("with a link")
    if any(tag in text for tag in ("[image]", "[gif]", "[video]")):
        labels.append("with media")
    if any(ord(c) > 0x2600 for c in text):
        labels.append("with emoji")
    if " ||| " in text or re.search(r"\b1/\d*\b", text):
        labels.append("thread")
    return labels


def instruction(tweet_id: int, topic: str, style: list[str], seed: int) -> str:
    pick = int.from_bytes(hashlib.blake2b(f"{seed}:{tweet_id}".encode(), digest_size=4).digest(), "little")
    return TEMPLATES[pick % len(TEMPLATES)].format(topic=topic, style=", ".join(style))


def engagement_weights(quality: np.ndarray, floor: float, power: float) -> np.ndarray:
    """Weights in [floor, 1] from quality percentiles, rescaled to mean 1; unknown quality gets 1."""
    known = ~np.isnan(quality)
    raw = np.ones(len(quality))
    raw[known] = floor + (1 - floor) * np.clip(quality[known], 0, 1) ** power
    if known.any():
        raw[known] /= raw[known].mean()
    return raw


@dataclass
class ViralSummary:
    out: Path
    rows: dict[str, int]
    skipped: dict[str, int]


def build_viral(
    config: ViralConfig, instructor: Generator | None = None, show_progress: bool = True
) -> ViralSummary:
    """Write the instruction/response dataset (with `weight`) from the `tweets` dataset of a build."""
    from datasets import load_dataset

    if not Path(config.tweets).is_dir():
        raise TrainingError(f"no tweets dataset at {config.tweets} (run `personas build --only tweets`)")
    splits = load_dataset(str(config.tweets))
    replies: Counter[int] = Counter()
    for split in splits.values():
        replies.update(p for p in split["parent_id"] if p is not None)
    wanted = {a.lower().lstrip("@") for a in config.accounts}
    skipped: Counter[str] = Counter()
    rows_by_split: dict[str, list[dict[str, Any]]] = {}
    for name, split in splits.items():
        rows = []
        for tweet in split.select_columns(
            [
                "tweet_id",
                "parent_id",
                "parent_missing",
                "username",
                "body",
                "favorite_count",
                "retweet_count",
                "quality",
            ]
        ):
            if wanted and (tweet["username"] or "").lower() not in wanted:
                continue
            if tweet["parent_id"] is not None or tweet["parent_missing"]:
                skipped["reply"] += 1
                continue
            body = (tweet["body"] or "").strip()
            if len(body) < config.min_chars:
                skipped["too short"] += 1
                continue
            topic, style = topic_of(body), style_of(body)
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": f"Assistant is @{tweet['username']}.", "train": False},
                        {
                            "role": "user",
                            "content": instruction(tweet["tweet_id"], topic, style, config.seed),
                            "train": False,
                        },
                        {"role": "assistant", "content": body, "train": True},
                    ],
                    "tweet_id": tweet["tweet_id"],
                    "username": tweet["username"],
                    "topic": topic,
                    "style": style,
                    "likes": tweet["favorite_count"],
                    "retweets": tweet["retweet_count"],
                    "replies": replies.get(tweet["tweet_id"], 0),
                    "impressions": None,
                    "quality": tweet["quality"],
                    "instruction_source": "template",
                }
            )
        rows_by_split[name] = rows
    everything = [row for rows in rows_by_split.values() for row in rows]
    if not everything:
        raise TrainingError(f"no top-level tweets of {sorted(wanted) or 'any account'} in {config.tweets}")
    if config.backtranslate_model:
        if instructor is None:
            raise TrainingError(
                "back-translation needs an inference client (personas train viral --backtranslate)"
            )
        backtranslate(everything, instructor, config.backtranslate_model, skipped, show_progress)
    quality = np.array(
        [np.nan if r["quality"] is None else r["quality"] for r in everything], dtype=np.float64
    )
    for row, weight in zip(
        everything, engagement_weights(quality, config.weight_floor, config.weight_power), strict=True
    ):
        row["weight"] = float(weight)
    with DatasetWriter(Path(config.out), VIRAL_SCHEMA) as writer:
        for name, rows in rows_by_split.items():
            if rows:
                writer.add(name, rows)
        writer.close(
            CardSpec(
                pretty_name="Viral-tweet instructions",
                description=(
                    "Instruction/response pairs from top-level tweets, with engagement and a loss weight "
                    "from normalized engagement (the viral-tweet recipe; `personas train sft --weighted engagement`)."
                ),
                tags=["twitter", "engagement", "instruction"],
                fields=VIRAL_FIELDS,
                statistics={"examples": len(everything), **{f"skipped ({k})": v for k, v in skipped.items()}},
            )
        )
    return ViralSummary(Path(config.out), {k: len(v) for k, v in rows_by_split.items()}, dict(skipped))


BACKTRANSLATE_PROMPT = (
    "Here is a tweet. Write the one-sentence instruction someone would give to get exactly this tweet "
    "written (its topic and style), and nothing else.\n\nTweet: {tweet}"
)


def backtranslate(
    rows: list[dict[str, Any]], instructor: Generator, model: str, skipped: Counter[str], show_progress: bool
) -> None:
    """Replace template instructions with ones a model writes from the tweet (kept on an empty answer)."""
    with progress_task("back-translate", len(rows), "tweets", show=show_progress) as bar:
        for row in rows:
            tweet = row["messages"][2]["content"]
            written = instructor.generate(
                [{"role": "user", "content": BACKTRANSLATE_PROMPT.format(tweet=tweet)}], model
            )
            written = written.strip()
            if written:
                row["messages"][1]["content"] = written
                row["instruction_source"] = f"backtranslated:{model}"
            else:
                skipped["empty back-translation (template kept)"] += 1
            bar.advance(1)


def weighted_trainer_class() -> Any:
    import torch
    from trl import SFTTrainer

    class WeightedSFTTrainer(SFTTrainer):
        """SFTTrainer whose token losses are scaled by the example's `weight`."""

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            columns: list[str] = list(self._signature_columns or [])
            if "weight" not in columns:
                self._signature_columns = [*columns, "weight"]  # type: ignore[assignment]

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            weight = inputs.pop("weight")
            if return_outputs:  # evaluation asking for logits: no weighting there
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            outputs = model(**inputs, use_cache=False, fused_lm_head=True)
            per_token = -outputs.log_probs * weight.to(outputs.log_probs.dtype)[:, None]
            tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = per_token.sum() / torch.as_tensor(tokens).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return loss

    return WeightedSFTTrainer


def weighted_collator(pad_token_id: int) -> Any:
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    base = DataCollatorForLanguageModeling(pad_token_id=pad_token_id)

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        weights = [float(example.pop("weight")) for example in examples]
        batch = base(examples)
        batch["weight"] = torch.tensor(weights, dtype=torch.float32)
        return dict(batch)

    return collate


def build_weighted_trainer(config: WeightedSFTConfig, show_progress: bool = True) -> Any:
    if config.packing:
        raise TrainingError(
            "engagement-weighted SFT cannot pack: a packed row mixes examples of different weights"
        )
    trainer_class = weighted_trainer_class()
    trainer = build_sft_trainer(
        config.model_copy(update={"packing": False}),
        trainer_class=trainer_class,
        extra_columns=(config.weight_column,),
        show_progress=show_progress,
    )
    if config.weight_column not in trainer.train_dataset.column_names:
        raise TrainingError(f"{config.data} has no `{config.weight_column}` column")
    if config.weight_column != "weight":
        trainer.train_dataset = trainer.train_dataset.rename_column(config.weight_column, "weight")
        if trainer.eval_dataset is not None:
            trainer.eval_dataset = trainer.eval_dataset.rename_column(config.weight_column, "weight")
    trainer.data_collator = weighted_collator(trainer.processing_class.pad_token_id)
    return trainer


def train_weighted(config: WeightedSFTConfig, show_progress: bool = True) -> TrainResult:
    """Engagement-weighted SFT (LoRA by default) on a dataset with `messages` and a weight column."""
    _ = load_split(config.data, config.split, 1)  # a clear error before the heavy imports
    return finish(build_weighted_trainer(config, show_progress), config, "sft-weighted")
