"""Held-out loss/perplexity on a ChatML split, and generations for a fixed set of prompts.

The loss counts exactly the tokens training learns (assistant messages marked `train`, through
the same train-flag template), so eval loss is comparable with the training loss. The prompts
are the first examples of the split, cut before their last trained reply: the same prompts for
every run on the same data, generated greedily, saved in `<run>/eval/<split>.json` so runs can be
compared side by side.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.progress import progress_task
from pipeline.store.atomic import atomic_write_bytes
from pipeline.train.common import TrainingError, chat_dataset, load_split, load_tokenizer, torch_dtype


@dataclass
class EvalResult:
    model: str
    data: str
    split: str
    examples: int
    tokens: int
    loss: float
    perplexity: float
    seconds: float
    generations: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None


def load_for_inference(model: str | Path, precision: str = "auto") -> tuple[Any, Any]:
    """A model folder, an adapter folder (its base + the adapter) or a hub name; with its tokenizer."""
    from transformers import AutoModelForCausalLM

    lm: Any
    path = Path(model)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise TrainingError(f"{path}/adapter_config.json does not name its base model")
        lm = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype(precision)), str(path)
        )
        tokenizer = load_tokenizer(path if (path / "tokenizer_config.json").is_file() else base)
    else:
        lm = AutoModelForCausalLM.from_pretrained(str(model), dtype=torch_dtype(precision))
        tokenizer = load_tokenizer(model)
    lm.eval()
    return lm, tokenizer


def prompt_of(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str] | None:
    """Messages before the last trained assistant message, and that message (the reference)."""
    for index in range(len(messages) - 1, 0, -1):
        if messages[index]["role"] == "assistant" and messages[index]["train"]:
            return messages[:index], messages[index]["content"]
    return None


def evaluate(
    model: str | Path,
    data: Path,
    *,
    split: str = "test",
    out: Path | None = None,
    max_examples: int | None = 200,
    max_length: int = 1024,
    prompts: int = 8,
    max_new_tokens: int = 64,
    precision: str = "auto",
    show_progress: bool = True,
) -> EvalResult:
    import torch

    started = time.perf_counter()
    rows = chat_dataset(load_split(data, split, max_examples))
    lm, tokenizer = load_for_inference(model, precision)
    device = next(lm.parameters()).device
    total_nll, total_tokens = 0.0, 0
    with progress_task(f"eval {split}", len(rows), "examples", show=show_progress) as bar, torch.no_grad():
        for row in rows:
            encoded = tokenizer.apply_chat_template(
                row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
            )
            ids = torch.tensor(encoded["input_ids"][:max_length], device=device)[None]
            mask = torch.tensor(encoded["assistant_masks"][:max_length], device=device)[None].bool()
            labels = ids.masked_fill(~mask, -100)
            if (labels[:, 1:] != -100).sum() == 0:
                bar.advance(1)
                continue
            logits = lm(input_ids=ids).logits[:, :-1].float()
            target = labels[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total_nll += float(nll)
            total_tokens += int((target != -100).sum())
            bar.advance(1)
        generations = []
        for row in rows.select(range(min(prompts, len(rows)))):
            cut = prompt_of(row["messages"])
            if cut is None:
                continue
            context, reference = cut
            ids = tokenizer.apply_chat_template(
                context, tokenize=True, add_generation_prompt=True, return_dict=True
            )["input_ids"][-max_length:]
            generated = lm.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            text = tokenizer.decode(generated[0, len(ids) :], skip_special_tokens=True)
            generations.append({"prompt": context[-1]["content"], "reference": reference, "generation": text})
    if total_tokens == 0:
        raise TrainingError(f"no trained assistant tokens in split {split!r} of {data}")
    loss = total_nll / total_tokens
    result = EvalResult(
        model=str(model),
        data=str(data),
        split=split,
        examples=len(rows),
        tokens=total_tokens,
        loss=loss,
        perplexity=math.exp(min(loss, 50.0)),
        seconds=round(time.perf_counter() - started, 3),
        generations=generations,
    )
    save_to = out if out is not None else (Path(model) / "eval" if Path(model).is_dir() else None)
    if save_to is not None:
        path = Path(save_to) / f"{split}.json"
        result.path = str(path)
        atomic_write_bytes(path, orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2))
    return result
