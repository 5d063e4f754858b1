"""Time one greedy decode step of the shared decode loop in each KV-cache mode (generation/static_cache.py):
dynamic (DynamicCache, a growing mask), static (StaticCache, eager) and compiled (StaticCache +
torch.compile; CUDA graphs on CUDA), side by side in one process on the same prompts, and check that
all modes decode the same tokens.

A decode step reads every weight and the whole KV cache once, so its floor is bytes / bandwidth:
with --peak-gbps (H100 SXM 3350, H200 4800) the fraction of that bound each mode reaches is reported.

    python benchmarks/bench_decode_step.py --quick                               # CPU, tiny shape
    python benchmarks/bench_decode_step.py --shape 1.3b --batch 256 --context 128 --dtype bfloat16 --peak-gbps 3350

The last line is one JSON object with ms_per_step and bound_fraction per mode.
"""
import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_el import GPT_NEO_SHAPES, timed  # noqa: E402

SHAPES = {**GPT_NEO_SHAPES, "tiny": (4, 4, 256)}


def build(shape: str, dtype, device):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from unlearn.models.gpt_neo_sdpa import enable_sdpa

    layers, heads, width = SHAPES[shape]
    config = GPTNeoConfig(vocab_size=50257, hidden_size=width, num_layers=layers, num_heads=heads,
                          attention_types=[[["global", "local"], layers // 2]], max_position_embeddings=2048)
    torch.manual_seed(0)
    return enable_sdpa(GPTNeoForCausalLM(config)).to(device=device, dtype=dtype).eval()


def step_bytes(model, batch: int, context: int) -> int:
    """Bytes one decode step must read: every parameter once, and every layer's keys and values."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    cfg = model.config
    element = next(model.parameters()).element_size()
    return weights + 2 * cfg.num_layers * batch * context * cfg.hidden_size * element


def time_mode(model, prompts, steps, mode, pad):
    from unlearn.generation import decode
    from unlearn.generation.static_cache import set_decode_mode

    set_decode_mode(model, mode)
    decode(model, prompts, steps, pad, batch_size=len(prompts))  # warm-up (the compiled mode compiles here)
    out, seconds = timed(lambda: decode(model, prompts, steps, pad, batch_size=len(prompts)))
    # decode = one prefill + (steps - 1) steps; the prefill alone is timed to take it out
    _, prefill = timed(lambda: decode(model, prompts, 1, pad, batch_size=len(prompts)))
    return out, max(seconds - prefill, 1e-9) / (steps - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized: tiny shape, batch 8, context 32, 16 steps")
    parser.add_argument("--shape", default="125m", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--context", type=int, default=128, help="prompt tokens before decoding")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--modes", default="dynamic,static,compiled")
    parser.add_argument("--peak-gbps", type=float, default=0.0, help="the device's memory bandwidth, for the bound")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.batch, args.context, args.steps, args.device = "tiny", 8, 32, 16, "cpu"
    model = build(args.shape, getattr(torch, args.dtype), args.device)
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(1, model.config.vocab_size, (args.batch, args.context), generator=g).tolist()
    result = {"shape": args.shape, "device": args.device, "dtype": args.dtype, "batch": args.batch,
              "context": args.context, "steps": args.steps, "modes": {}}
    outputs = {}
    for mode in args.modes.split(","):
        out, per_step = time_mode(model, prompts, args.steps, mode, 50256)
        outputs[mode] = out
        bound = step_bytes(model, args.batch, args.context + args.steps // 2) / (args.peak_gbps * 1e9) if args.peak_gbps else None
        row = {"ms_per_step": round(per_step * 1e3, 3), "bound_fraction": round(bound / per_step, 3) if bound else None}
        result["modes"][mode] = row
        print(f"{mode:9s} {row['ms_per_step']:9.3f} ms/step" + (f"  {row['bound_fraction']:.1%} of the bandwidth bound" if bound else ""),
              flush=True)
    first = next(iter(outputs.values()))
    result["identical"] = all(o == first for o in outputs.values())
    import transformers

    result.update({"torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
                   "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
