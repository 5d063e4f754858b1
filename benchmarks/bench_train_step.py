"""Training-step throughput and peak memory: GA and EMSO steps against HF's eager GPT-Neo on the same batch.

Variants, each on the same random batch of token ids (B x T) and the same random-weight GPT-Neo:
  hf_eager_ga   GA step, transformers' eager attention, torch's default AdamW: the baseline
  ga            GA step through the shared base: SDPA attention, fused AdamW on CUDA, + torch.compile with --compile
  em_full       plain entropy maximization, every matrix trains (EMSO's "Full & EM")
  emso          EMSO step: masked update of the k selected blocks (selection not included)
  emso_select   one EMSO selection (streamed g_EM reductions); "selection costs <= 1 extra step"
Peak memory: torch.cuda.max_memory_allocated on CUDA; on the CPU each variant runs in its own
process and reports its peak RSS above the RSS after loading (ru_maxrss), a coarser measure.
Absolute tok/s depend on the machine and its load; compare the ratios, measured in one run.

    python benchmarks/bench_train_step.py                                  # CPU: small GPT-Neo shape
    python benchmarks/bench_train_step.py --shape 125m --device cuda --batch 64 --length 200 --bf16
    python benchmarks/bench_train_step.py --shape 1.3b --device cuda --batch 16 --length 200 --bf16 --compile
"""
import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {"small": (4, 8, 256), "125m": (12, 12, 768), "1.3b": (24, 16, 2048), "2.7b": (32, 20, 2560)}
VARIANTS = ["hf_eager_ga", "ga", "em_full", "emso", "emso_select"]


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def build(args, variant):
    from omegaconf import OmegaConf
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from unlearn.data.collate import Collator, SequenceDataset
    from unlearn.methods import get_method
    from unlearn.models.gpt_neo_sdpa import enable_eager, enable_sdpa

    layers, heads, width = SHAPES[args.shape]
    config = GPTNeoConfig(vocab_size=args.vocab, hidden_size=width, num_layers=layers, num_heads=heads,
                          attention_types=[[["global", "local"], layers // 2]], max_position_embeddings=2048)
    torch.manual_seed(0)
    model = GPTNeoForCausalLM(config)
    model = enable_eager(model) if variant == "hf_eager_ga" else enable_sdpa(model)
    model = model.to(args.device).train()
    method = "ga" if variant in ("hf_eager_ga", "ga") else "emso"
    cfg = OmegaConf.create({"name": method, "lr": 1e-5, "betas": [0.9, 0.999], "weight_decay": 0.0, "batch_size": args.batch,
                            "k": 2, "selection": "full" if variant == "em_full" else "contrastive", "objective": "em",
                            "reselect_every": "epoch", "reselect_steps": 100, "max_epochs": 1,
                            "fused_adamw": False if variant == "hf_eager_ga" else "auto"})
    g = torch.Generator().manual_seed(1)
    items = [{"input_ids": torch.randint(0, args.vocab, (args.length,), generator=g).tolist(), "prefix_len": 1}
             for _ in range(args.batch)]
    from unlearn.data.encode import EncodedSplit

    split = EncodedSplit([str(i) for i in range(len(items))], [i["input_ids"] for i in items], [1] * len(items))
    module = get_method(method)(model, cfg, {"forget": SequenceDataset(split)}, Collator(0), seed=0)
    if args.compile and variant != "hf_eager_ga":
        module.__dict__["compiled_model"] = torch.compile(model, dynamic=False)
    batch = {k: v.to(args.device) for k, v in module.collator([module.datasets["forget"][i] for i in range(args.batch)]).items()}
    return module, batch


def measure(args, variant) -> dict:
    module, batch = build(args, variant)
    base_rss = current_rss_mb()  # model and batch loaded, no step taken yet
    cuda = args.device.startswith("cuda")
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    if variant in ("emso", "em_full"):
        module.select()
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16)

    def step():
        if variant == "emso_select":
            module.select()
            return
        with autocast:
            loss, _ = module.loss({"forget": batch})
        loss.backward()
        module.on_after_backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb()
    return {"variant": variant, "s_per_step": seconds, "tok_per_s": args.batch * args.length / seconds,
            "peak_mb": peak, "rss_before_mb": base_rss}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, fp32 master weights")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--only", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in this process
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        print(json.dumps(measure(args, args.only)))
        return
    rows = []
    for variant in VARIANTS:
        if args.device.startswith("cuda"):
            rows.append(measure(args, variant))
        else:  # fresh process per variant: ru_maxrss is a process-lifetime peak
            cmd = [sys.executable, __file__, "--only", variant] + [a for a in sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
        r = rows[-1]
        print(f"{variant:12s} {r['tok_per_s']:10.0f} tok/s  {r['s_per_step']:7.3f} s/step  peak {r['peak_mb']:8.0f} MB", flush=True)
    by = {r["variant"]: r for r in rows}
    base = by["hf_eager_ga"]
    rel = "peak_mb" if args.device.startswith("cuda") else None
    summary = {
        "shape": args.shape, "device": args.device, "batch": args.batch, "length": args.length, "bf16": args.bf16,
        "compile": args.compile, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "speedup_ga_vs_hf_eager": round(by["ga"]["tok_per_s"] / base["tok_per_s"], 3),
        "speedup_emso_vs_hf_eager": round(by["emso"]["tok_per_s"] / base["tok_per_s"], 3),
        "emso_select_in_steps": round(by["emso_select"]["s_per_step"] / by["emso"]["s_per_step"], 3),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows,
    }
    if rel:
        summary["peak_emso_vs_em"] = round(max(by["emso"]["peak_mb"], by["emso_select"]["peak_mb"]) / by["em_full"]["peak_mb"], 3)
    else:  # CPU: peak RSS growth above the loaded state, per process
        grow = {v: by[v]["peak_mb"] - by[v]["rss_before_mb"] for v in by}
        summary["peak_growth_mb"] = {v: round(g, 1) for v, g in grow.items()}
        summary["peak_rss_emso_vs_em"] = round(max(by["emso"]["peak_mb"], by["emso_select"]["peak_mb"]) / by["em_full"]["peak_mb"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
