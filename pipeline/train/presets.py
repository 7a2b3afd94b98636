"""The two runs the plan names, as presets over RunConfig fields, each with its multi-GPU launch file.

    personas train sft --preset sanity-1.5b --data out/datasets/chatml-multi-party
    accelerate launch --config_file pipeline/train/launch/fsdp.yaml "$(command -v personas)" \
        train sft --preset full-32b --data out/datasets/chatml-multi-party

Options given on the command line win over the preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LAUNCH_DIR = Path(__file__).parent / "launch"

PRESETS: dict[str, dict[str, Any]] = {
    # A sanity run: one GPU is enough (about 4 GB of bf16 weights + LoRA); the launch file spreads it
    # over more when present.
    "sanity-1.5b": {
        "base": "Qwen/Qwen2.5-1.5B-Instruct",
        "batch_size": 8,
        "grad_accum": 2,
        "max_length": 2048,
        "learning_rate": 2e-4,
        "epochs": 1.0,
        "warmup": 0.03,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "targets": ["q_proj", "k_proj", "v_proj"]},
        "launch": "fsdp.yaml",
    },
    # The full run: 32B in bf16 is 64 GB of weights, so it is sharded (FSDP or ZeRO-3) with
    # activation checkpointing; per-device batch 1, accumulated to 16 sequences per device.
    "full-32b": {
        "base": "Qwen/Qwen2.5-32B-Instruct",
        "batch_size": 1,
        "grad_accum": 16,
        "max_length": 4096,
        "learning_rate": 1e-4,
        "epochs": 2.0,
        "warmup": 0.03,
        "gradient_checkpointing": True,
        "precision": "bf16",
        "lora": {"r": 64, "alpha": 128, "dropout": 0.05, "targets": ["q_proj", "k_proj", "v_proj"]},
        "launch": "deepspeed_zero3.yaml",
    },
}


def preset(name: str) -> dict[str, Any]:
    """RunConfig fields of a preset (without the launch file)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return {k: v for k, v in PRESETS[name].items() if k != "launch"}


def launch_file(name: str) -> Path:
    return LAUNCH_DIR / PRESETS[name]["launch"]
