"""DPO on the preference pairs, on top of an SFT adapter or the base (TRL's DPOTrainer).

With an SFT adapter, training continues that adapter and the reference is the adapter's own
starting point (TRL copies it to a frozen "ref" adapter), so DPO moves away from the SFT model,
not from the raw base. Without one, a fresh LoRA is trained and the reference is the base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.train.common import (
    callbacks,
    load_causal_lm,
    load_tokenizer,
    lora_config,
    preference_splits,
    run_trainer,
    save_final,
    trl_args,
    write_run,
)
from pipeline.train.config import DPORunConfig
from pipeline.train.sft import TrainResult


def train_dpo(config: DPORunConfig, show_progress: bool = True) -> TrainResult:
    from trl import DPOConfig, DPOTrainer

    train, evaluation = preference_splits(config.data, config.split, config.eval_split, config.max_examples)
    tokenizer = load_tokenizer(
        config.adapter
        if config.adapter and (Path(config.adapter) / "tokenizer_config.json").is_file()
        else config.base
    )
    model = load_causal_lm(config.base, config.precision, adapter=config.adapter)
    args = trl_args(
        config, DPOConfig, has_eval=evaluation is not None, beta=config.beta, loss_type=list(config.loss_type),
        max_length=config.max_length,
    )  # fmt: skip
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=None if config.adapter is not None else lora_config(config.lora),
        callbacks=callbacks(config, show_progress),
    )
    metrics = run_trainer(trainer, config)

    def save(folder: Path) -> None:
        if config.adapter is not None:  # without the frozen "ref" copy
            model_out: Any = trainer.model
            model_out.save_pretrained(str(folder), selected_adapters=["default"])
        else:
            trainer.save_model(str(folder))
        tokenizer.save_pretrained(str(folder))

    save_final(config.out, save)
    rewards = {
        k: v
        for k, v in (trainer.state.log_history[-2] if len(trainer.state.log_history) > 1 else {}).items()
        if k.startswith("rewards/")
    }
    write_run(config, "dpo", {**metrics, **rewards})
    return TrainResult(Path(config.out), {**metrics, **rewards})
