"""A tiny offline Qwen2-architecture chat model for the vLLM tests (training-stack.md §3), no hub.

A byte-level BPE trained on a few sentences, wrapped as Qwen2Tokenizer (what transformers 5 and
vLLM build for model_type qwen2) with a ChatML template; random weights written straight to
safetensors with numpy (no torch needed), head size 32 (vLLM's CPU attention needs >= 32).
About 100k parameters: it talks nonsense, quickly, which is all the serving tests need.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>\\n' }}{%- endgeneration %}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "is scaling enough? maybe the vibes are shifting, idk, but the models keep getting better",
    "you are rabe. stay in character. the conversation is about crypto, math, proofs and protocols",
    "i think the timeline is a garden and everyone is tending their own little plot of weird ideas",
    "hot take: most threads are just one good tweet with nine footnotes attached",
    "the quick brown fox jumps over the lazy dog 0123456789 !?.,:;'\"()[]{}<>@#$%^&*-_=+/\\|~`",
]
HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 64, 2, 2, 1, 128
_CACHE: dict[Path, Path] = {}


def _tokenizer(out: Path) -> int:
    from tokenizers import Tokenizer, models, trainers
    from transformers import Qwen2Tokenizer

    # Qwen2's own normalizer and pre-tokenizer, so our BPE splits text exactly as Qwen2Tokenizer will.
    reference = Qwen2Tokenizer().backend_tokenizer
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = reference.normalizer
    bpe.pre_tokenizer = reference.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS, show_progress=False)
    from tokenizers import pre_tokenizers

    trainer.initial_alphabet = pre_tokenizers.ByteLevel.alphabet()  # type: ignore[attr-defined]
    bpe.train_from_iterator(CORPUS * 20, trainer)
    data = json.loads(bpe.to_str())
    vocab = data["model"]["vocab"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    return len(tokenizer)


def _weights(vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    head = HIDDEN // HEADS

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": w(vocab, HIDDEN),
        "model.norm.weight": np.ones(HIDDEN, np.float32),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors |= {
            p + "input_layernorm.weight": np.ones(HIDDEN, np.float32),
            p + "post_attention_layernorm.weight": np.ones(HIDDEN, np.float32),
            p + "self_attn.q_proj.weight": w(HEADS * head, HIDDEN),
            p + "self_attn.q_proj.bias": np.zeros(HEADS * head, np.float32),
            p + "self_attn.k_proj.weight": w(KV_HEADS * head, HIDDEN),
            p + "self_attn.k_proj.bias": np.zeros(KV_HEADS * head, np.float32),
            p + "self_attn.v_proj.weight": w(KV_HEADS * head, HIDDEN),
            p + "self_attn.v_proj.bias": np.zeros(KV_HEADS * head, np.float32),
            p + "self_attn.o_proj.weight": w(HIDDEN, HEADS * head),
            p + "mlp.gate_proj.weight": w(INTERMEDIATE, HIDDEN),
            p + "mlp.up_proj.weight": w(INTERMEDIATE, HIDDEN),
            p + "mlp.down_proj.weight": w(HIDDEN, INTERMEDIATE),
        }
    return tensors


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write the tiny model into `directory` (once per process) and return it."""
    directory = Path(directory)
    if directory in _CACHE and (directory / "model.safetensors").is_file():
        return _CACHE[directory]
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    vocab = _tokenizer(directory)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 4096,
        "vocab_size": vocab,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0], "pad_token_id": 0}))
    save_file(_weights(vocab, seed), str(directory / "model.safetensors"), metadata={"format": "pt"})
    _CACHE[directory] = directory
    return directory


def build_tiny_adapter(directory: Path, base: Path, *, rank: int = 8, seed: int = 1) -> Path:
    """A PEFT LoRA adapter folder for the tiny model (q_proj, v_proj), random B so it changes outputs."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    head = HIDDEN // HEADS
    tensors = {}
    for i in range(LAYERS):
        for proj, out_dim in (("q_proj", HEADS * head), ("v_proj", KV_HEADS * head)):
            p = f"base_model.model.model.layers.{i}.self_attn.{proj}."
            tensors[p + "lora_A.weight"] = (rng.standard_normal((rank, HIDDEN)) * 0.5).astype(np.float32)
            tensors[p + "lora_B.weight"] = (rng.standard_normal((out_dim, rank)) * 0.5).astype(np.float32)
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "modules_to_save": None,
        "use_dora": False,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return directory
