"""A tiny random-weight Qwen2 model with a ChatML tokenizer, built offline in a few seconds.

Tests, `python -m bench.train --tiny` and dry runs need a model without the Hub. This one has the
real Qwen2 architecture and tokenizer class (byte-level BPE with Qwen2's normalizer and
pre-tokenizer, ChatML specials), so every code path that loads `Qwen/Qwen2.5-*` by name takes the
same route when given this folder. Head size 32: the smallest vLLM's CPU attention accepts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
"""Ids 0 (pad), 1, 2 (eos), as in Qwen2.5's ChatML."""

SAMPLE_TEXT = (
    "the quick brown fox jumps over the lazy dog. what's the best book on attention? thanks! "
    "ordering it now ||| also curious what others think. User is Bob. Assistant is Alice. Date is "
    '2023-11-14. <ref url="https://blog.example/a"/> <qt>@alice: hello</qt> [image] lol yes no maybe '
    "I think this is great, you should write more about it. 0123456789 #tpot @visakanv"
)


def build_tiny_model(
    out: Path,
    *,
    texts: Iterable[str] = (),
    vocab_size: int = 512,
    hidden_size: int = 64,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny Qwen2 causal LM + tokenizer (ChatML template with generation markers) to `out`."""
    import torch
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    from pipeline.datasets.chatml import TRAIN_FLAG_CHAT_TEMPLATE

    reference = Qwen2Tokenizer()  # an empty vocab; only its normalizer and pre-tokenizer are used
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = reference.backend_tokenizer.normalizer
    bpe.pre_tokenizer = reference.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [SAMPLE_TEXT, *texts]
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,  # type: ignore[arg-type]  # the backend takes (left, right) pairs
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_tokens([AddedToken(token, special=True) for token in SPECIALS])
    tokenizer.chat_template = TRAIN_FLAG_CHAT_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,  # rotary: no weights; room for the vLLM tests' long prompts
        tie_word_embeddings=True,
        eos_token_id=2,
        pad_token_id=0,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=[2, 0], pad_token_id=0)
    model.save_pretrained(out)
    return out


def build_tiny_adapter(out: Path, base: Path, *, rank: int = 8, seed: int = 1) -> Path:
    """A PEFT LoRA adapter (q_proj, v_proj) for a tiny model at `base`, with random A and B so it
    visibly changes the outputs (a trained adapter's B starts at zero). For serving tests."""
    import json

    import torch
    from safetensors.torch import save_file

    config = json.loads((base / "config.json").read_text())
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    head = hidden // config["num_attention_heads"]
    outputs = {"q_proj": config["num_attention_heads"] * head, "v_proj": config["num_key_value_heads"] * head}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for i in range(layers):
        for proj, out_dim in outputs.items():
            prefix = f"base_model.model.model.layers.{i}.self_attn.{proj}."
            tensors[prefix + "lora_A.weight"] = torch.randn(rank, hidden, generator=generator) * 0.5
            tensors[prefix + "lora_B.weight"] = torch.randn(out_dim, rank, generator=generator) * 0.5
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": sorted(outputs),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "modules_to_save": None,
        "use_dora": False,
    }
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    return out
