"""LoRA SFT on the ChatML datasets with TRL's SFTTrainer; the loss follows the per-message `train` flags.

The tokenizer gets `TRAIN_FLAG_CHAT_TEMPLATE` (ChatML whose `{% generation %}` block wraps only
assistant messages marked `train`) and `assistant_only_loss=True`, so context turns, other
speakers and branch-masked repeats are never targets. The run folder gets the adapter (or the
full model with LoRA off), the tokenizer, run.json and metrics.jsonl; checkpoints resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.train.common import (
    callbacks,
    chat_dataset,
    load_causal_lm,
    load_split,
    load_tokenizer,
    lora_config,
    optional_split,
    run_trainer,
    save_final,
    trl_args,
    write_run,
)
from pipeline.train.config import SFTRunConfig


@dataclass
class TrainResult:
    out: Path
    metrics: dict[str, Any]


def build_sft_trainer(
    config: SFTRunConfig,
    *,
    trainer_class: Any = None,
    extra_columns: tuple[str, ...] = (),
    show_progress: bool = True,
    **args_extra: Any,
) -> Any:
    """An SFTTrainer (or subclass) for the config, ready to `train()`."""
    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(config.base)
    train = chat_dataset(load_split(config.data, config.split, config.max_examples), extra_columns)
    evaluation = optional_split(config.data, config.eval_split, config.max_examples)
    if evaluation is not None:
        evaluation = chat_dataset(evaluation, extra_columns)
    model = load_causal_lm(config.base, config.precision, adapter=config.adapter)
    args = trl_args(
        config,
        SFTConfig,
        has_eval=evaluation is not None,
        max_length=config.max_length,
        packing=config.packing,
        assistant_only_loss=True,
        **args_extra,
    )
    return (trainer_class or SFTTrainer)(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=None if config.adapter is not None else lora_config(config.lora),
        callbacks=callbacks(config, show_progress),
    )


def finish(trainer: Any, config: SFTRunConfig, method: str) -> TrainResult:
    metrics = run_trainer(trainer, config)

    def save(folder: Path) -> None:
        trainer.save_model(str(folder))
        trainer.processing_class.save_pretrained(str(folder))

    save_final(config.out, save)
    write_run(config, method, metrics)
    return TrainResult(Path(config.out), metrics)


def train_sft(config: SFTRunConfig, show_progress: bool = True) -> TrainResult:
    """LoRA (or full) SFT; returns the run folder and the final metrics."""
    return finish(build_sft_trainer(config, show_progress=show_progress), config, "sft")
