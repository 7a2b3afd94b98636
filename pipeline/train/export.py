"""Export a trained adapter for serving: merged full weights, or the adapter as vLLM loads it.

Both are written beside the destination and renamed into place, so a reader (a vLLM server
watching a folder) never sees half a model. An adapter export is checked against what vLLM's LoRA
loader accepts (no biases, no DoRA, rank within --max-lora-rank choices, modules_to_save only for
a classifier head) and carries its serve command in SERVE.md.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from pipeline.store.atomic import fsync_path
from pipeline.train.common import TrainingError, adapter_base, load_tokenizer, torch_dtype

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def vllm_problems(adapter: Path) -> list[str]:
    """Why vLLM would refuse this adapter (empty: it loads)."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    problems = []
    if config.get("use_dora"):
        problems.append("DoRA adapters are not supported by vLLM")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        problems.append("adapters with biases are not supported by vLLM")
    extra = [m for m in config.get("modules_to_save") or [] if m not in ("score", "classifier")]
    if extra:
        problems.append(f"modules_to_save {extra} are not supported by vLLM")
    if int(config.get("r", 0)) > max(VLLM_LORA_RANKS):
        problems.append(f"rank {config.get('r')} exceeds vLLM's largest --max-lora-rank")
    return problems


def _replace_dir(tmp: Path, out: Path) -> None:
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    fsync_path(out.parent)
    shutil.rmtree(old, ignore_errors=True)


def export_model(
    adapter: Path, out: Path, *, merge: bool, base: str | None = None, precision: str = "auto"
) -> Path:
    """Merged weights (`merge`) or a clean adapter folder at `out`; returns `out`."""
    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise TrainingError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    base_name = base or adapter_base(adapter)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tokenizer = load_tokenizer(adapter if (adapter / "tokenizer_config.json").is_file() else base_name)
        if merge:
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(base_name, dtype=torch_dtype(precision))
            merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            merged.save_pretrained(str(tmp))
            serve = f"vllm serve {out.resolve()} --served-model-name {out.name}"
        else:
            problems = vllm_problems(adapter)
            if problems:
                raise TrainingError(f"{adapter} cannot be served by vLLM: {'; '.join(problems)}")
            tmp.mkdir()
            for name in ADAPTER_FILES:
                shutil.copy2(adapter / name, tmp / name)
            rank = int(json.loads((adapter / "adapter_config.json").read_text()).get("r", 16))
            max_rank = min(r for r in VLLM_LORA_RANKS if r >= rank)
            served_base = Path(base_name).resolve() if Path(base_name).exists() else base_name
            serve = (
                f"vllm serve {served_base} --enable-lora --max-lora-rank {max_rank} "
                f"--lora-modules {out.name}={out.resolve()}"
            )
        tokenizer.save_pretrained(str(tmp))
        (tmp / "SERVE.md").write_text(f"# Serving\n\n```bash\n{serve}\n```\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
