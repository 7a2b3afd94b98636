"""Commands: train sft|viral|dpo|reward|rl|distill|export|remote, and eval (training persona models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli.app import app, state, user_errors
from pipeline.progress import stdout
from pipeline.train.config import (
    DistillConfig,
    DPORunConfig,
    RewardRunConfig,
    RLRunConfig,
    RunConfig,
    SFTRunConfig,
    ViralConfig,
    WeightedSFTConfig,
)

train_app = typer.Typer(
    help="Train persona models (LoRA SFT, weighted SFT, DPO, reward model, RL).", no_args_is_help=True
)
app.add_typer(train_app, name="train")


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


Base = Annotated[str | None, typer.Option(help="base model: hub name or local folder (default from config)")]
Out = Annotated[Path | None, typer.Option(help="run folder (default <train.runs>/<method>)")]
Preset = Annotated[str | None, typer.Option(help="sanity-1.5b or full-32b (options given win)")]
MaxSteps = Annotated[int | None, typer.Option(help="stop after this many optimizer steps")]
Epochs = Annotated[float | None, typer.Option(help="epochs")]
LR = Annotated[float | None, typer.Option("--lr", help="learning rate")]
Batch = Annotated[int | None, typer.Option(help="per-device batch size")]
Accum = Annotated[int | None, typer.Option(help="gradient accumulation steps")]
MaxLen = Annotated[int | None, typer.Option(help="tokens per example")]
LoraR = Annotated[int | None, typer.Option(help="LoRA rank")]
LoraAlpha = Annotated[int | None, typer.Option(help="LoRA alpha")]
Targets = Annotated[
    str | None, typer.Option(help="LoRA target modules, comma list (default q_proj,k_proj,v_proj)")
]
NoLora = Annotated[bool, typer.Option("--full", help="train all weights instead of a LoRA adapter")]
ReportTo = Annotated[str | None, typer.Option(help="tensorboard, wandb, none (comma list)")]
MaxExamples = Annotated[int | None, typer.Option(help="use only the first N examples")]
SaveSteps = Annotated[int | None, typer.Option(help="checkpoint every N steps")]
Fresh = Annotated[bool, typer.Option("--fresh", help="ignore existing checkpoints in the run folder")]


def _config(cls: type[RunConfig], method: str, preset_name: str | None, **given: Any) -> Any:
    """Config from the [train] section, then the preset, then the options given (None = not given)."""
    from pipeline.train.presets import preset

    train = state.settings().train
    values: dict[str, Any] = {
        "base": train.base,
        "report_to": train.report_to,
        "lora": train.lora.model_dump(),
        "out": train.runs / method,
    }
    if preset_name:
        values.update(preset(preset_name))
    lora = dict(values["lora"])
    for key, field in (("lora_r", "r"), ("lora_alpha", "alpha"), ("lora_targets", "targets")):
        value = given.pop(key, None)
        if value is not None:
            lora[field] = _csv(value) if field == "targets" else value
    if given.pop("full", False):
        lora["enabled"] = False
    values["lora"] = lora
    if given.get("report_to") is not None:
        given["report_to"] = _csv(given["report_to"])
    if given.pop("fresh", False):
        values["resume"] = False
    values.update({k: v for k, v in given.items() if v is not None})
    return cls(**values)


def _print_run(title: str, out: Path, metrics: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_row("run folder", str(out))
    for key in ("global_step", "first_loss", "last_loss", "train_loss", "wall_s"):
        if key in metrics:
            value = metrics[key]
            table.add_row(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else str(value))
    stdout.print(table)


@train_app.command("sft")
@user_errors
def train_sft(
    data: Annotated[Path, typer.Option(help="ChatML dataset folder (personas build)")] = Path(
        "out/datasets/chatml-multi-party"
    ),
    weighted: Annotated[
        str | None, typer.Option(help="`engagement`: weight each example's loss by its `weight` column")
    ] = None,
    adapter: Annotated[Path | None, typer.Option(help="continue training this LoRA adapter")] = None,
    packing: Annotated[bool, typer.Option(help="pack examples into full-length rows")] = False,
    eval_split: Annotated[str, typer.Option(help="split evaluated during training ('' for none)")] = "dev",
    eval_steps: Annotated[int | None, typer.Option(help="evaluate every N steps")] = None,
    base: Base = None,
    out: Out = None,
    preset: Preset = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    lr: LR = None,
    batch_size: Batch = None,
    grad_accum: Accum = None,
    max_length: MaxLen = None,
    lora_r: LoraR = None,
    lora_alpha: LoraAlpha = None,
    lora_targets: Targets = None,
    full: NoLora = False,
    report_to: ReportTo = None,
    max_examples: MaxExamples = None,
    save_steps: SaveSteps = None,
    fresh: Fresh = False,
) -> None:
    """Supervised fine-tuning (LoRA on q,k,v by default); the loss follows the messages' train flags."""
    if weighted not in (None, "engagement"):
        raise ValueError("--weighted takes `engagement`")
    common = dict(
        data=data, adapter=adapter, packing=packing, eval_split=eval_split or None, eval_steps=eval_steps,
        base=base, out=out, max_steps=max_steps, epochs=epochs, learning_rate=lr, batch_size=batch_size,
        grad_accum=grad_accum, max_length=max_length, lora_r=lora_r, lora_alpha=lora_alpha,
        lora_targets=lora_targets, full=full, report_to=report_to, max_examples=max_examples,
        save_steps=save_steps, fresh=fresh,
    )  # fmt: skip
    if weighted:
        from pipeline.train.weighted import train_weighted

        wconfig = _config(WeightedSFTConfig, "sft-weighted", preset, **common)
        result = train_weighted(wconfig)
    else:
        from pipeline.train.sft import train_sft as run

        config = _config(SFTRunConfig, "sft", preset, **common)
        result = run(config)
    _print_run("sft", result.out, result.metrics)


@train_app.command("viral")
@user_errors
def train_viral(
    tweets: Annotated[Path, typer.Option(help="the tweets dataset of `personas build`")] = Path(
        "out/datasets/tweets"
    ),
    accounts: Annotated[str | None, typer.Option(help="comma list of handles (default: all)")] = None,
    out: Annotated[Path, typer.Option(help="dataset folder to write")] = Path("out/datasets/viral"),
    min_chars: Annotated[int, typer.Option(help="shortest tweet kept")] = 20,
    backtranslate: Annotated[
        str | None, typer.Option(help="model on the inference endpoint that writes the instructions")
    ] = None,
) -> None:
    """Build viral-tweet instruction data (with engagement weights) for `train sft --weighted engagement`."""
    from pipeline.inference import ChatClient
    from pipeline.train.common import ClientGenerator
    from pipeline.train.weighted import build_viral

    config = ViralConfig(
        tweets=tweets,
        accounts=_csv(accounts),
        out=out,
        min_chars=min_chars,
        backtranslate_model=backtranslate,
    )
    if backtranslate:
        with ChatClient(state.settings().inference) as client:
            summary = build_viral(config, ClientGenerator(client, max_tokens=64, temperature=0.7))
    else:
        summary = build_viral(config)
    rows = ", ".join(f"{k} {v:,}" for k, v in summary.rows.items())
    skipped = ", ".join(f"{k} {v:,}" for k, v in summary.skipped.items()) or "none"
    stdout.print(f"wrote {summary.out}: {rows}; skipped: {skipped}")


@train_app.command("export")
@user_errors
def train_export(
    adapter: Annotated[Path, typer.Option(help="LoRA adapter folder (a run folder)")],
    out: Annotated[Path, typer.Option(help="where the export goes")],
    merge: Annotated[bool, typer.Option(help="merge into full weights (else a vLLM-ready adapter)")] = False,
    base: Annotated[str | None, typer.Option(help="base model (default: the adapter's own)")] = None,
) -> None:
    """Merged weights or an adapter ready for vLLM."""
    from pipeline.train.export import export_model

    path = export_model(adapter, out, merge=merge, base=base)
    stdout.print(f"exported {'merged model' if merge else 'adapter'} to {path} (serve: {path / 'SERVE.md'})")


@app.command("eval")
@user_errors
def eval_command(
    model: Annotated[str, typer.Option(help="run folder, adapter, model folder or hub name")],
    data: Annotated[Path, typer.Option(help="ChatML dataset folder")] = Path(
        "out/datasets/chatml-multi-party"
    ),
    split: Annotated[str, typer.Option(help="held-out split")] = "test",
    out: Annotated[
        Path | None, typer.Option(help="where eval/<split>.json goes (default <model>/eval)")
    ] = None,
    max_examples: Annotated[int, typer.Option(help="examples scored")] = 200,
    prompts: Annotated[int, typer.Option(help="fixed prompts generated")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="tokens per generation")] = 64,
) -> None:
    """Held-out loss/perplexity and generations for a fixed set of prompts, saved next to the run."""
    from pipeline.train.evaluate import evaluate

    result = evaluate(
        model,
        data,
        split=split,
        out=out,
        max_examples=max_examples,
        prompts=prompts,
        max_new_tokens=max_new_tokens,
    )
    table = Table(title=f"eval {split}", show_header=False, title_justify="left")
    table.add_row("examples", f"{result.examples:,}")
    table.add_row("tokens scored", f"{result.tokens:,}")
    table.add_row("loss", f"{result.loss:.4f}")
    table.add_row("perplexity", f"{result.perplexity:.2f}")
    table.add_row("generations", f"{len(result.generations)} -> {result.path or '(not saved)'}")
    stdout.print(table)


@train_app.command("dpo")
@user_errors
def train_dpo(
    data: Annotated[Path, typer.Option(help="preference dataset folder")] = Path("out/datasets/prefs"),
    adapter: Annotated[Path | None, typer.Option(help="SFT adapter to start from")] = None,
    beta: Annotated[float | None, typer.Option(help="DPO beta")] = None,
    base: Base = None,
    out: Out = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    lr: LR = None,
    batch_size: Batch = None,
    max_length: MaxLen = None,
    lora_r: LoraR = None,
    report_to: ReportTo = None,
    max_examples: MaxExamples = None,
    fresh: Fresh = False,
) -> None:
    """DPO on the preference pairs, on top of an SFT adapter (its base unless --base) or the base."""
    from pipeline.train.common import adapter_base
    from pipeline.train.dpo import train_dpo as run

    if adapter is not None and base is None:
        base = adapter_base(adapter)
    config = _config(
        DPORunConfig, "dpo", None, data=data, adapter=adapter, beta=beta, base=base, out=out, max_steps=max_steps,
        epochs=epochs, learning_rate=lr, batch_size=batch_size, max_length=max_length, lora_r=lora_r,
        report_to=report_to, max_examples=max_examples, fresh=fresh,
    )  # fmt: skip
    result = run(config)
    _print_run("dpo", result.out, result.metrics)


@train_app.command("reward")
@user_errors
def train_reward(
    data: Annotated[Path, typer.Option(help="preference dataset folder")] = Path("out/datasets/prefs"),
    base: Base = None,
    out: Out = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    lr: LR = None,
    batch_size: Batch = None,
    max_length: MaxLen = None,
    lora_r: LoraR = None,
    report_to: ReportTo = None,
    max_examples: MaxExamples = None,
    fresh: Fresh = False,
) -> None:
    """A reward model (one score) on the preference pairs, for `train rl --reward reward-model`."""
    from pipeline.train.reward import train_reward as run

    config = _config(
        RewardRunConfig, "reward", None, data=data, base=base, out=out, max_steps=max_steps, epochs=epochs,
        learning_rate=lr, batch_size=batch_size, max_length=max_length, lora_r=lora_r, report_to=report_to,
        max_examples=max_examples, fresh=fresh,
    )  # fmt: skip
    result = run(config)
    _print_run("reward model", result.out, result.metrics)


@train_app.command("rl")
@user_errors
def train_rl(
    prompts: Annotated[
        Path, typer.Option(help="rows with prompt (and output, engagement): JSONL, Parquet or a folder")
    ],
    reward: Annotated[
        str, typer.Option(help="comma list: engagement-model, reward-model, format, length")
    ] = "engagement-model,format,length",
    algorithm: Annotated[str, typer.Option(help="grpo or rloo")] = "grpo",
    reward_model: Annotated[Path | None, typer.Option(help="folder from `personas train reward`")] = None,
    engagement_model: Annotated[
        Path | None, typer.Option(help="engagement.json (else fit on the rows)")
    ] = None,
    digests: Annotated[
        Path | None, typer.Option(help="a build's scores/digests.json to normalize engagement")
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="adapter to continue (e.g. the SFT or DPO run)")
    ] = None,
    num_generations: Annotated[int | None, typer.Option(help="completions per prompt")] = None,
    max_completion_length: Annotated[int | None, typer.Option(help="tokens per completion")] = None,
    base: Base = None,
    out: Out = None,
    max_steps: MaxSteps = None,
    lr: LR = None,
    batch_size: Batch = None,
    lora_r: LoraR = None,
    report_to: ReportTo = None,
    max_examples: MaxExamples = None,
    fresh: Fresh = False,
) -> None:
    """Online RL (GRPO/RLOO) with our rewards: reward model, engagement model, format and length."""
    from pipeline.train.common import adapter_base
    from pipeline.train.rl import train_rl as run

    if adapter is not None and base is None:
        base = adapter_base(adapter)
    config = _config(
        RLRunConfig, "rl", None, prompts=prompts, rewards=_csv(reward), algorithm=algorithm,
        reward_model=reward_model, engagement_model=engagement_model, digests=digests, adapter=adapter,
        num_generations=num_generations, max_completion_length=max_completion_length, base=base, out=out,
        max_steps=max_steps, learning_rate=lr, batch_size=batch_size, lora_r=lora_r, report_to=report_to,
        max_examples=max_examples, fresh=fresh,
    )  # fmt: skip
    result = run(config)
    _print_run(f"rl ({config.algorithm})", result.out, result.metrics)
    for key, value in result.metrics.items():
        if key.startswith("rewards/") and key.endswith("/mean"):
            stdout.print(f"{key}: {value:.4f}")


@train_app.command("remote")
@user_errors
def train_remote(
    data: Annotated[Path, typer.Option(help="ChatML dataset folder")] = Path(
        "out/datasets/chatml-multi-party"
    ),
    split: Annotated[str, typer.Option(help="split uploaded")] = "train",
    model: Annotated[str | None, typer.Option(help="Together base model (default from config)")] = None,
    work_dir: Annotated[Path, typer.Option(help="where the JSONL and job.json go")] = Path("runs/remote"),
    suffix: Annotated[str | None, typer.Option(help="suffix of the fine-tuned model's name")] = None,
    wait: Annotated[bool, typer.Option(help="poll until the job ends")] = False,
    max_examples: MaxExamples = None,
) -> None:
    """Fine-tune on Together.ai (no GPU needed): upload the JSONL, create the job, poll. Key: $TOGETHER_API_KEY."""
    from pipeline.train.remote import submit

    config = state.settings().train.remote
    if model:
        config = config.model_copy(update={"model": model})
    job = submit(
        config, data, split=split, work_dir=work_dir, wait=wait, suffix=suffix, max_examples=max_examples
    )
    stdout.print(f"fine-tune {job.id}: {job.status}" + (f" -> {job.output_name}" if job.output_name else ""))
    stdout.print(f"record: {work_dir / 'job.json'}")


@train_app.command("distill")
@user_errors
def train_distill(
    teachers: Annotated[
        str, typer.Option(help="comma list of teacher model names on the inference endpoint")
    ],
    student: Annotated[str, typer.Option(help="student base model (hub name or folder)")],
    prompts: Annotated[Path, typer.Option(help="ChatML dataset the prompts come from")] = Path(
        "out/datasets/chatml-multi-party"
    ),
    max_prompts: Annotated[int, typer.Option(help="prompts used")] = 200,
    samples: Annotated[int, typer.Option(help="replies per teacher and prompt")] = 1,
    max_tokens: Annotated[int, typer.Option(help="tokens per teacher reply")] = 128,
    temperature: Annotated[float, typer.Option(help="teacher sampling temperature")] = 0.8,
    out: Out = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    lr: LR = None,
    batch_size: Batch = None,
    max_length: MaxLen = None,
    lora_r: LoraR = None,
    report_to: ReportTo = None,
) -> None:
    """Reverse distillation: teachers answer prompts through the inference endpoint; the student learns them."""
    from pipeline.inference import ChatClient
    from pipeline.train.distill import ClientGenerator
    from pipeline.train.distill import train_distill as run

    config = _config(
        DistillConfig, "distill", None, teachers=_csv(teachers), base=student, prompts=prompts,
        max_prompts=max_prompts, samples_per_prompt=samples, max_tokens=max_tokens, temperature=temperature,
        out=out, max_steps=max_steps, epochs=epochs, learning_rate=lr, batch_size=batch_size,
        max_length=max_length, lora_r=lora_r, report_to=report_to,
    )  # fmt: skip
    with ChatClient(state.settings().inference) as client:
        generator = ClientGenerator(client, max_tokens=config.max_tokens, temperature=config.temperature)
        data, result = run(config, generator)
    per = ", ".join(f"{k} {v:,}" for k, v in data.per_teacher.items())
    stdout.print(f"distilled {data.examples:,} replies ({per}) into {data.out}")
    _print_run("distill (student sft)", result.out, result.metrics)
