"""Training benchmark: the sanity-1.5b SFT preset vs the same run with plain TRL defaults.

    python -m bench.train                      # on a GPU machine: Qwen2.5-1.5B-Instruct (hub or local copy)
    python -m bench.train --base /models/qwen2.5-1.5b --steps 50
    python -m bench.train --tiny               # anywhere: a tiny random Qwen2 on CPU (shows the harness works)

Both runs train on the same slice of synthetic ChatML (synth -> ingest -> build), for the same
number of optimizer steps and batch size, each in a fresh subprocess. "ours" is the preset (LoRA on
q,k,v, the train-flag loss mask, the preset's lr/length/precision); "plain" is `SFTTrainer` with
`SFTConfig` defaults (full fine-tuning, TRL's own template handling, all assistant turns learned).
Recorded per run: trained tokens/s (non-pad tokens through the model), peak GPU memory
(torch.cuda.max_memory_allocated) or peak RSS on CPU, and the loss curve. The ratio ours/plain is
the figure. Results: bench/results/train.json (GPU) or bench/results/train-tiny-cpu.json (--tiny).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.common import machine, make_corpus, peak_rss_run
from pipeline.config import DatasetsConfig
from pipeline.datasets.build import build
from pipeline.ingest import ingest_files
from pipeline.store import Store

RESULTS = Path(__file__).parent / "results"

RUN = """
import json, os, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1") if sys.argv[6] == "tiny" else None
from pathlib import Path
import torch
variant, base, data, out, steps = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5])
tiny = sys.argv[6] == "tiny"
if variant == "ours":
    from pipeline.train.config import SFTRunConfig
    from pipeline.train.presets import preset
    from pipeline.train.sft import build_sft_trainer
    values = {**preset("sanity-1.5b"), "base": base, "data": data, "out": out, "max_steps": steps,
              "report_to": ["none"], "eval_split": None, "logging_steps": 1, "save_steps": 10**6}
    if tiny:
        values.update(max_length=256, batch_size=4, grad_accum=1)
    trainer = build_sft_trainer(SFTRunConfig(**values), show_progress=False)
else:
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer
    rows = load_dataset(str(data))["train"]
    rows = rows.map(lambda r: {"messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]]},
                    remove_columns=rows.column_names)
    kwargs = {"output_dir": str(out), "max_steps": steps, "report_to": "none", "logging_steps": 1,
              "save_strategy": "no", "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2,
              "max_length": 2048}
    if tiny:
        kwargs.update(max_length=256, per_device_train_batch_size=4, gradient_accumulation_steps=1)
    if not torch.cuda.is_available():
        kwargs.update(bf16=False, use_cpu=True, gradient_checkpointing=False)
    trainer = SFTTrainer(model=base, args=SFTConfig(**kwargs), train_dataset=rows)
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - start
logs = trainer.state.log_history
tokens = trainer._total_train_tokens
print(json.dumps({
    "variant": variant, "seconds": seconds, "steps": trainer.state.global_step, "tokens": tokens,
    "tokens_per_s": tokens / seconds, "loss": [e["loss"] for e in logs if "loss" in e],
    "peak_gpu_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None,
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="Qwen/Qwen2.5-1.5B-Instruct")
    parser.add_argument("--tiny", action="store_true", help="a tiny random Qwen2 instead (CPU check)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tweets", type=int, default=6000, help="synthetic corpus size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        base = args.base
        if args.tiny:
            from pipeline.train.tiny import build_tiny_model

            base = str(build_tiny_model(work / "tiny", hidden_size=128, layers=4))
        files, _, _ = make_corpus(work / "corpus", args.tweets, accounts=20)
        store = Store(work / "store", gc_grace_s=0)
        ingest_files(store, files, kind="archive", workers=1, show_progress=False)
        build(
            store,
            DatasetsConfig(out=work / "datasets", workers=1),
            only=["chatml-two-party"],
            show_progress=False,
        )
        data = work / "datasets" / "chatml-two-party"
        script = work / "run.py"
        script.write_text(RUN)
        runs = []
        for variant in ("ours", "plain"):
            out, seconds, peak_rss = peak_rss_run(
                [
                    sys.executable,
                    str(script),
                    variant,
                    base,
                    str(data),
                    str(work / variant),
                    str(args.steps),
                    "tiny" if args.tiny else "real",
                ]
            )
            result = json.loads(out.strip().splitlines()[-1])
            result["peak_rss_bytes"] = peak_rss
            result["process_seconds"] = seconds
            runs.append(result)
    ours, plain = runs
    memory = "peak_gpu_bytes" if ours["peak_gpu_bytes"] else "peak_rss_bytes"
    report = {
        **machine(),
        "base": "tiny random Qwen2 (hidden 128, 4 layers)" if args.tiny else base,
        "steps": args.steps,
        "device": ours["device"],
        "gpu_measured": ours["device"] != "cpu",
        "runs": runs,
        "ratio": {
            "tokens_per_s": ours["tokens_per_s"] / plain["tokens_per_s"],
            memory: ours[memory] / plain[memory],
        },
    }
    if not report["gpu_measured"]:
        report["note"] = (
            "CPU only: no GPU was available, so the GPU figures (tokens/s, peak GPU memory) were not measured."
        )
    RESULTS.mkdir(exist_ok=True)
    name = "train-tiny-cpu.json" if args.tiny else "train.json"
    (RESULTS / name).write_text(json.dumps(report, indent=2) + "\n")
    print("| run | steps | tokens | tokens/s | peak memory | first loss | last loss | trainable params |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(
            f"| {run['variant']} | {run['steps']} | {run['tokens']:,} | {run['tokens_per_s']:,.0f} | "
            f"{run[memory] / 2**20:,.0f} MiB | {run['loss'][0]:.3f} | {run['loss'][-1]:.3f} | {run['trainable_params']:,} |"
        )
    print(
        f"ratio ours/plain: tokens/s {report['ratio']['tokens_per_s']:.2f}, memory {report['ratio'][memory]:.2f}"
    )


if __name__ == "__main__":
    main()
