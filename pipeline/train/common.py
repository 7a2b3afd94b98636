"""What the trainers share: loading bases, tokenizers and datasets, TRL arguments, tracking, run folders.

A run folder (`--out`) holds the final adapter (or model) with its tokenizer, `run.json` (the config
and the final metrics), `metrics.jsonl` (every logged step, whatever `report_to` says), tensorboard
logs under `logs/`, and `checkpoints/` (resumable).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from pipeline.progress import make_progress
from pipeline.store.atomic import atomic_write_bytes, fsync_path
from pipeline.train.config import LoraSettings, RunConfig

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

log = logging.getLogger("pipeline.train")

MESSAGE_KEYS = ("role", "content", "train")
"""What TRL needs of a ChatML message; the dataset's name/tweet_ids/created_at stay behind."""


class Generator(Protocol):
    """Text from a model for chat messages: the inference client behind `ClientGenerator`, or a test double."""

    def generate(self, messages: list[dict[str, Any]], model: str) -> str: ...


class ClientGenerator:
    """A Generator over the inference client (`pipeline.inference.ChatClient.chat`)."""

    def __init__(self, client: Any, **params: Any):
        self.client = client
        self.params = params

    def generate(self, messages: list[dict[str, Any]], model: str) -> str:
        return str(self.client.chat(messages, model=model, **self.params))


class TrainingError(ValueError):
    """A run cannot start: bad data, a missing adapter, an unusable option (reported, no traceback)."""


# -- data --------------------------------------------------------------------------------------------


def load_split(path: Path | str, split: str, max_examples: int | None = None) -> Dataset:
    """One split of a dataset folder written by `personas build` (or any `load_dataset` folder/file)."""
    from datasets import load_dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # rich bars show the long steps; datasets' tqdm per map/filter is noise here
    path = Path(path)
    if not path.exists():
        siblings = sorted(p.name for p in path.parent.glob(f"{path.name}*") if p.is_dir())
        hint = f"; did you mean {', '.join(str(path.parent / s) for s in siblings)}?" if siblings else ""
        raise TrainingError(f"no dataset at {path}{hint}")
    if path.is_file():
        kind = "json" if path.suffix in (".jsonl", ".json") else path.suffix.lstrip(".")
        dataset = load_dataset(kind, data_files={split: str(path)})
    else:
        dataset = load_dataset(str(path))
    if split not in dataset:
        raise TrainingError(f"{path} has no split {split!r} (it has {', '.join(dataset)})")
    rows = dataset[split]
    if max_examples is not None and len(rows) > max_examples:
        rows = rows.select(range(max_examples))
    if len(rows) == 0:
        raise TrainingError(f"split {split!r} of {path} is empty")
    return rows


def optional_split(path: Path, split: str | None, max_examples: int | None = None) -> Dataset | None:
    if split is None:
        return None
    try:
        return load_split(path, split, max_examples)
    except TrainingError as exc:
        log.info("no evaluation split: %s", exc)
        return None


def slim_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as TRL wants them: role, content and the loss flag (default True for assistants)."""
    slim = []
    for message in messages:
        train = message.get("train")
        slim.append(
            {
                "role": message["role"],
                "content": message.get("content") or "",
                "train": bool(train) if train is not None else message["role"] == "assistant",
            }
        )
    return slim


def chat_dataset(rows: Dataset, extra: tuple[str, ...] = ()) -> Dataset:
    """Keep `messages` (slimmed) and the named extra columns; drop examples with nothing to learn."""
    if "messages" not in rows.column_names:
        raise TrainingError(f"expected a ChatML dataset with a `messages` column, got {rows.column_names}")
    keep = {"messages", *extra}
    rows = rows.remove_columns([c for c in rows.column_names if c not in keep])
    rows = rows.map(lambda row: {"messages": slim_messages(row["messages"])})
    before = len(rows)
    rows = rows.filter(lambda row: any(m["role"] == "assistant" and m["train"] for m in row["messages"]))
    if len(rows) < before:
        log.info("skipped %d example(s) without a trained assistant message", before - len(rows))
    if len(rows) == 0:
        raise TrainingError("no example has an assistant message to train on")
    return rows


def turns(rows: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m.get("content") or ""} for m in rows or []]


def preference_splits(
    data: Path, split: str, eval_split: str | None, max_examples: int | None
) -> tuple[Dataset, Dataset | None]:
    """The training and (when present) evaluation splits of a preference dataset, in TRL's shape."""
    evaluation = optional_split(data, eval_split, max_examples)
    return (
        preference_dataset(load_split(data, split, max_examples)),
        preference_dataset(evaluation) if evaluation is not None else None,
    )


def preference_dataset(rows: Dataset) -> Dataset:
    """prompt/chosen/rejected turns (+ margin), as TRL's DPO and reward trainers take them."""
    missing = {"prompt", "chosen", "rejected"} - set(rows.column_names)
    if missing:
        raise TrainingError(f"expected a preference dataset; missing columns {sorted(missing)}")
    keep = {"prompt", "chosen", "rejected", "margin"}
    rows = rows.remove_columns([c for c in rows.column_names if c not in keep])
    return rows.map(
        lambda row: {
            "prompt": turns(row["prompt"]),
            "chosen": turns(row["chosen"]),
            "rejected": turns(row["rejected"]),
        }
    )


# -- models --------------------------------------------------------------------------------------------


def load_tokenizer(base: str | Path) -> PreTrainedTokenizerBase:
    """The base's tokenizer with the train-flag ChatML template (loss follows the `train` flags).

    The template is ChatML, which Qwen2.5 speaks; it replaces the base's own template so the
    default "You are Qwen..." system prompt is not injected into persona conversations.
    """
    from transformers import AutoTokenizer

    from pipeline.datasets.chatml import TRAIN_FLAG_CHAT_TEMPLATE

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.chat_template = TRAIN_FLAG_CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(precision: str) -> Any:
    import torch

    if precision == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_causal_lm(base: str | Path, precision: str = "auto", adapter: Path | None = None) -> PreTrainedModel:
    """A causal LM by hub name or folder; with `adapter`, a trainable PeftModel on top of it."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch_dtype(precision))
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise TrainingError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    return model


def lora_config(settings: LoraSettings, task_type: str = "CAUSAL_LM", **extra: Any) -> Any:
    if not settings.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.targets),
        bias="none",  # vLLM rejects adapters with biases
        task_type=task_type,
        **extra,
    )


def adapter_base(adapter: Path) -> str:
    """The base model an adapter was trained on (from its adapter_config.json)."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        raise TrainingError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    base = json.loads(config.read_text()).get("base_model_name_or_path")
    if not base:
        raise TrainingError(f"{config} does not name its base model")
    return str(base)


# -- TRL arguments, tracking, run folders -------------------------------------------------------------


def resolve_report_to(wanted: list[str]) -> list[str]:
    """Trackers that can actually run: wandb needs the package and a key (or offline mode)."""
    usable = []
    for name in wanted:
        if name in ("none", ""):
            continue
        if name == "wandb":
            if importlib.util.find_spec("wandb") is None:
                log.warning("report_to wandb: the wandb package is not installed; skipped")
                continue
            if not (
                os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") in ("offline", "disabled")
            ):
                log.warning("report_to wandb: no WANDB_API_KEY (or WANDB_MODE=offline); skipped")
                continue
        elif name == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
            log.warning("report_to tensorboard: tensorboard is not installed; skipped")
            continue
        usable.append(name)
    return usable or ["none"]


def checkpoints_dir(config: RunConfig) -> Path:
    return Path(config.out) / "checkpoints"


def latest_checkpoint(config: RunConfig) -> str | None:
    if not config.resume:
        return None
    found = sorted(
        (p for p in checkpoints_dir(config).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(found[-1]) if found else None


def trl_args(config: RunConfig, args_class: type, has_eval: bool = False, **extra: Any) -> Any:
    """The TRL config for a run: schedule, precision, checkpoints, tracking (metrics go to <out>/logs)."""
    import torch

    dtype = torch_dtype(config.precision)
    on_gpu = torch.cuda.is_available()
    out = Path(config.out)
    eval_steps = config.eval_steps if has_eval else None
    kwargs: dict[str, Any] = {
        "output_dir": str(checkpoints_dir(config)),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "warmup_steps": config.warmup,
        "seed": config.seed,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if eval_steps else "no",
        "eval_steps": eval_steps,
        "report_to": resolve_report_to(config.report_to),
        # TRL configs default to bf16 + gradient checkpointing; decide both here (CPU has neither)
        "bf16": bool(on_gpu and dtype == torch.bfloat16),
        "fp16": bool(on_gpu and dtype == torch.float16),
        "use_cpu": not on_gpu,
        "gradient_checkpointing": config.gradient_checkpointing,
        "disable_tqdm": True,  # the rich bar below replaces tqdm
    }
    kwargs.update(extra)
    # transformers 5 takes the tensorboard folder from the environment only; without it, ./runs
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "logs")
    return args_class(**kwargs)


def callbacks(config: RunConfig, show_progress: bool = True) -> list[TrainerCallback]:
    from transformers import TrainerCallback

    metrics_path = Path(config.out) / "metrics.jsonl"

    class RunLog(TrainerCallback):
        """Every logged step to <out>/metrics.jsonl, and a rich progress bar over optimizer steps."""

        def __init__(self) -> None:
            self.progress = make_progress(show_progress)
            self.task: Any = None
            self.started = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self.started = time.perf_counter()
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, items=0, unit="steps")
            self.progress.update(self.task, completed=state.global_step, items=state.global_step)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.task is not None:
                self.progress.update(self.task, completed=state.global_step, items=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if self.task is not None and logs and "loss" in logs:
                self.progress.update(self.task, description=f"train (loss {logs['loss']:.4f})")
            record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **(logs or {})}
            with open(metrics_path, "ab") as handle:
                handle.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.progress.stop()

    return [RunLog()]


def run_trainer(trainer: Any, config: RunConfig) -> dict[str, Any]:
    """Train (resuming from the newest checkpoint when there is one); return the final metrics."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the rich bar shows the loss; metrics.jsonl keeps every log
    resume = latest_checkpoint(config)
    if resume:
        log.info("resuming from %s", resume)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    metrics["wall_s"] = round(time.perf_counter() - started, 3)
    metrics["global_step"] = trainer.state.global_step
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        metrics["first_loss"], metrics["last_loss"] = losses[0], losses[-1]
    return metrics


def write_run(config: RunConfig, method: str, metrics: dict[str, Any], **extra: Any) -> Path:
    """<out>/run.json: what was run (config, versions) and how it ended."""
    import torch
    import transformers
    import trl

    record = {
        "method": method,
        "config": json.loads(config.model_dump_json()),
        "metrics": metrics,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        **extra,
    }
    path = Path(config.out) / "run.json"
    atomic_write_bytes(path, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path


def save_final(out: Path, save: Callable[[Path], object]) -> None:
    """Write the final model/adapter beside, then move each file into `out`: a reader (a server
    loading the run folder) sees the old files or the new ones, never a half-written one."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".final-{uuid.uuid4().hex[:8]}"
    try:
        save(tmp)
        if tmp.is_dir():  # only the main process writes in a distributed run
            for item in sorted(tmp.iterdir()):
                if item.is_file():
                    os.replace(item, out / item.name)
            fsync_path(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
