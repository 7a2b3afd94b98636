"""A reward model (sequence classification, one score) on the preference pairs, for the RL stage.

TRL's RewardTrainer with the pairs' `margin` (normalized quality difference) in the loss:
`-logsigmoid(r_chosen - r_rejected - margin)`. With LoRA the score head is trained in full
(`modules_to_save=["score"]`). The run folder holds a model that `AutoModelForSequenceClassification`
loads directly (LoRA merged on save), so `personas train rl --reward reward-model` needs no base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.train.common import (
    TrainingError,
    callbacks,
    load_tokenizer,
    lora_config,
    preference_splits,
    run_trainer,
    save_final,
    torch_dtype,
    trl_args,
    write_run,
)
from pipeline.train.config import RewardRunConfig
from pipeline.train.sft import TrainResult


def train_reward(config: RewardRunConfig, show_progress: bool = True) -> TrainResult:
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    train, evaluation = preference_splits(config.data, config.split, config.eval_split, config.max_examples)
    if not config.use_margin:
        train = train.remove_columns([c for c in ("margin",) if c in train.column_names])
        if evaluation is not None:
            evaluation = evaluation.remove_columns([c for c in ("margin",) if c in evaluation.column_names])
    tokenizer = load_tokenizer(config.base)
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base, num_labels=1, dtype=torch_dtype(config.precision)
    )
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    args = trl_args(
        config, RewardConfig, has_eval=evaluation is not None, max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient,
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(config.lora, task_type="SEQ_CLS", modules_to_save=["score"]),
        callbacks=callbacks(config, show_progress),
    )
    prepared: Any = trainer.train_dataset
    if prepared is None or len(prepared) == 0:
        raise TrainingError(
            f"every pair of {config.data} is longer than max_length={config.max_length} tokens"
        )
    metrics = run_trainer(trainer, config)
    final: Any = trainer.model
    if hasattr(final, "merge_and_unload"):
        final = final.merge_and_unload()

    def save(folder: Path) -> None:
        final.save_pretrained(str(folder))
        tokenizer.save_pretrained(str(folder))

    save_final(config.out, save)
    write_run(config, "reward", metrics)
    return TrainResult(Path(config.out), metrics)
