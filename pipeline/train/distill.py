"""Reverse distillation: several small persona models generate replies, a larger student learns them.

Prompts are ChatML examples cut before their last trained reply (as in evaluation). Each teacher
(a model name on the inference endpoint, e.g. LoRA adapters served by vLLM) answers every prompt
`samples_per_prompt` times; each answer becomes an example whose context is untrained and whose
final assistant message (the teacher's) is trained, tagged with the teacher. The dataset is written
through the shared dataset writer, then the student is trained on it with LoRA SFT.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.datasets.card import CardSpec
from pipeline.datasets.writer import DatasetWriter
from pipeline.progress import progress_task
from pipeline.train.common import ClientGenerator, Generator, TrainingError, chat_dataset, load_split
from pipeline.train.config import DistillConfig, SFTRunConfig
from pipeline.train.evaluate import prompt_of
from pipeline.train.sft import TrainResult, train_sft

log = logging.getLogger("pipeline.train.distill")

__all__ = ["ClientGenerator", "Generator", "build_distill_dataset", "train_distill"]


DISTILL_SCHEMA = pa.schema(
    [
        pa.field(
            "messages",
            pa.list_(pa.struct([("role", pa.string()), ("content", pa.string()), ("train", pa.bool_())])),
        ),
        pa.field("teacher", pa.string()),
        pa.field("prompt_index", pa.int64()),
        pa.field("sample", pa.int32()),
        pa.field("reference", pa.string()),
    ]
)


@dataclass
class DistillData:
    out: Path
    examples: int
    per_teacher: dict[str, int]
    skipped: dict[str, int]


def build_distill_dataset(
    config: DistillConfig, generator: Generator, show_progress: bool = True
) -> DistillData:
    if not config.teachers:
        raise TrainingError("give at least one teacher model (--teachers bot-a,bot-b)")
    rows = chat_dataset(load_split(config.prompts, config.prompt_split, config.max_prompts))
    out = Path(config.data_out or Path(config.out) / "data")
    skipped: Counter[str] = Counter()
    per_teacher: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    total = len(rows) * len(config.teachers) * config.samples_per_prompt
    with progress_task("distill: generate", total, "replies", show=show_progress) as bar:
        for index, row in enumerate(rows):
            cut = prompt_of(row["messages"])
            if cut is None:
                skipped["no trained reply"] += 1
                continue
            context, reference = cut
            context = [{"role": m["role"], "content": m["content"], "train": False} for m in context]
            request = [{"role": m["role"], "content": m["content"]} for m in context]
            for teacher in config.teachers:
                for sample in range(config.samples_per_prompt):
                    reply = generator.generate(request, teacher).strip()
                    bar.advance(1)
                    if not reply:
                        skipped["empty reply"] += 1
                        continue
                    examples.append(
                        {
                            "messages": [*context, {"role": "assistant", "content": reply, "train": True}],
                            "teacher": teacher,
                            "prompt_index": index,
                            "sample": sample,
                            "reference": reference,
                        }
                    )
                    per_teacher[teacher] += 1
    if not examples:
        raise TrainingError(f"the teachers produced no usable reply ({dict(skipped)})")
    if skipped:
        log.info("distill: skipped %s", dict(skipped))
    with DatasetWriter(out, DISTILL_SCHEMA) as writer:
        writer.add("train", examples)
        writer.close(
            CardSpec(
                pretty_name="Distilled persona replies",
                description="Replies of small persona models (teachers) to ChatML prompts, for training a larger student.",
                tags=["distillation", "persona"],
                fields={
                    "messages": "context (untrained) + the teacher's reply (trained)",
                    "teacher": "the model that wrote the reply",
                    "prompt_index": "row of the prompt dataset",
                    "sample": "sample number for that teacher and prompt",
                    "reference": "the human reply the prompt was cut before",
                },
                statistics={"examples": len(examples), **{f"from {k}": v for k, v in per_teacher.items()}},
            )
        )
    return DistillData(out, len(examples), dict(per_teacher), dict(skipped))


def train_distill(
    config: DistillConfig, generator: Generator, show_progress: bool = True
) -> tuple[DistillData, TrainResult]:
    data = build_distill_dataset(config, generator, show_progress)
    fields = {k: v for k, v in config.model_dump().items() if k in SFTRunConfig.model_fields}
    sft = SFTRunConfig(**{**fields, "data": data.out, "split": "train", "eval_split": None})
    return data, train_sft(sft, show_progress)
