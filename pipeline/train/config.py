"""One pydantic config per training method (TRL style), plus the `[train]` section of personas.toml.

Nothing here imports torch: the CLI validates options before the heavy imports. Each method's
module turns its config into the matching TRL config (`pipeline.train.common.trl_args`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

DEFAULT_BASE = "Qwen/Qwen2.5-1.5B-Instruct"


class LoraSettings(BaseModel):
    """LoRA adapter shape. The default targets (attention q/k/v) follow the plan; vLLM serves them as-is."""

    enabled: bool = True
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj"])


class RunConfig(BaseModel):
    """What every trainer shares: the base, where the run goes, the optimisation schedule, tracking."""

    base: str = Field(DEFAULT_BASE, description="hub name or local folder of the base model")
    out: Path = Field(Path("runs/run"), description="run folder: final adapter/model, metrics, checkpoints")
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: epochs decide)")
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, ge=1, description="per device")
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=16, description="tokens per example (longer ones are truncated)")
    warmup: float = Field(0.0, ge=0, description="warmup steps (an integer) or a fraction of all steps (< 1)")
    seed: int = 0
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1, description="checkpoint every this many steps")
    save_total_limit: int = Field(3, ge=1)
    eval_steps: int | None = Field(None, description="evaluate on the eval split every this many steps")
    report_to: list[str] = Field(
        default_factory=lambda: ["tensorboard"],
        description="tensorboard, wandb (when installed and configured), or none; metrics.jsonl is always written",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto: bf16 on a GPU that supports it, else fp32"
    )
    gradient_checkpointing: bool = False
    resume: bool = Field(True, description="continue from the newest checkpoint in <out>/checkpoints")
    lora: LoraSettings = Field(default_factory=LoraSettings)


class SFTRunConfig(RunConfig):
    data: Path = Field(Path("out/datasets/chatml-multi-party"), description="a ChatML dataset folder")
    split: str = "train"
    eval_split: str | None = Field("dev", description="split for evaluation during training (None: none)")
    adapter: Path | None = Field(None, description="continue training this LoRA adapter")
    packing: bool = False
    max_examples: int | None = Field(None, ge=1, description="use only the first N examples (smoke runs)")


class WeightedSFTConfig(SFTRunConfig):
    """SFT whose per-example loss is scaled by a `weight` column (engagement-weighted SFT)."""

    data: Path = Field(Path("out/datasets/viral"), description="a dataset with `messages` and `weight`")
    weight_column: str = "weight"


class ViralConfig(BaseModel):
    """Instruction/response pairs from an account's top-level tweets (the viral-tweet recipe)."""

    tweets: Path = Field(Path("out/datasets/tweets"), description="the `tweets` dataset of `personas build`")
    accounts: list[str] = Field(default_factory=list, description="handles; empty: every account")
    out: Path = Path("out/datasets/viral")
    min_chars: int = Field(20, ge=1)
    weight_floor: float = Field(
        0.1, ge=0, description="smallest weight, so low-engagement tweets still count"
    )
    weight_power: float = Field(1.0, gt=0, description="weight = floor + (1 - floor) * quality ** power")
    backtranslate_model: str | None = Field(
        None, description="a model (on the inference endpoint) that writes each tweet's instruction"
    )
    seed: int = 0


class DPORunConfig(RunConfig):
    data: Path = Field(
        Path("out/datasets/prefs"), description="a preference dataset (prompt/chosen/rejected)"
    )
    split: str = "train"
    eval_split: str | None = "dev"
    adapter: Path | None = Field(None, description="SFT adapter to start from (the reference is the base)")
    beta: float = Field(0.1, gt=0)
    loss_type: list[str] = Field(default_factory=lambda: ["sigmoid"])
    learning_rate: float = Field(5e-6, gt=0)
    max_examples: int | None = Field(None, ge=1)


class RewardRunConfig(RunConfig):
    data: Path = Field(
        Path("out/datasets/prefs"), description="a preference dataset (prompt/chosen/rejected)"
    )
    split: str = "train"
    eval_split: str | None = "dev"
    use_margin: bool = Field(True, description="pass the pairs' `margin` to the loss")
    center_rewards_coefficient: float | None = 0.01
    learning_rate: float = Field(1e-4, gt=0)
    max_examples: int | None = Field(None, ge=1)


RewardName = Literal["reward-model", "engagement-model", "format", "length"]
DEFAULT_REWARDS: tuple[RewardName, ...] = ("engagement-model", "format", "length")


class RLRunConfig(RunConfig):
    prompts: Path = Field(
        Path("out/rl/rows.jsonl"), description="rows with `prompt` (and `output`, `engagement` for fitting)"
    )
    algorithm: Literal["grpo", "rloo"] = "grpo"
    rewards: list[RewardName] = Field(default_factory=lambda: list(DEFAULT_REWARDS))
    reward_weights: list[float] | None = None
    reward_model: Path | None = Field(None, description="a reward model from `personas train reward`")
    engagement_model: Path | None = Field(None, description="a fitted engagement model (engagement.json)")
    digests: Path | None = Field(
        None,
        description="t-digest state of a build (out/datasets/scores/digests.json) to normalize engagement",
    )
    adapter: Path | None = None
    num_generations: int = Field(4, ge=2)
    max_completion_length: int = Field(64, ge=1)
    target_chars: tuple[int, int] = Field((20, 280), description="length without penalty (a tweet's range)")
    beta: float = Field(0.0, ge=0, description="KL to the base (0: no reference model)")
    temperature: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    max_examples: int | None = Field(None, ge=1)


class DistillConfig(RunConfig):
    """Reverse distillation: small persona models teach a larger student."""

    teachers: list[str] = Field(
        default_factory=list, description="model names served by the inference endpoint"
    )
    prompts: Path = Field(Path("out/datasets/chatml-multi-party"), description="ChatML dataset for prompts")
    prompt_split: str = "train"
    samples_per_prompt: int = Field(1, ge=1)
    max_prompts: int | None = Field(200, ge=1)
    data_out: Path | None = Field(None, description="where the generated dataset goes (default <out>/data)")
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.8, ge=0)


class RemoteConfig(BaseModel):
    """Together.ai fine-tuning (OpenAI-style files + fine-tunes endpoints)."""

    base_url: str = "https://api.together.xyz/v1"
    api_key: SecretStr | None = Field(None, description="default: $TOGETHER_API_KEY")
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    epochs: int = Field(1, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    lora: bool = True
    poll_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1)


class TrainConfig(BaseModel):
    """`[train]` in personas.toml: defaults for `personas train ...`."""

    base: str = DEFAULT_BASE
    runs: Path = Field(Path("runs"), description="where runs go when --out is not given")
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    lora: LoraSettings = Field(default_factory=LoraSettings)
    remote: RemoteConfig = Field(default_factory=RemoteConfig)
