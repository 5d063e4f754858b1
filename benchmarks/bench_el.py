"""Time the EL engine against the reference loop (one HF `generate` per prefix length) and check
that their continuations are identical, on a memorized target and on an "unlearned" one.

Both targets are built from the model itself, so the benchmark needs no training and no data:
- memorized: the model's own greedy continuations of short prompts. Teacher-forced argmax equals
  every next token (MA = 1 up to ties): the engine reuses teacher-forced hits and decodes nothing,
  as on a memorized target.
- unlearned: the same sequences with a fraction of tokens replaced at random (--corrupt, default 0.4):
  MA drops to about 0.6 and a fresh branch starts at every miss, as on a partly erased target.
The measured MA of each is reported. Seconds depend on the machine and its load; the speed-ups are
ratios measured side by side in one process.

    python benchmarks/bench_el.py --quick                      # CPU, SmolLM2-135M, a few sequences
    python benchmarks/bench_el.py --shape 125m --device cuda --n 16 --length 200
    python benchmarks/bench_el.py --shape 1.3b --device cuda --n 16 --length 200 --dtype bfloat16

The last line is one JSON object: identical, speedup_memorized, speedup_unlearned, and the rest.
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

GPT_NEO_SHAPES = {  # (layers, heads, d_model): GPT-Neo 125M / 1.3B / 2.7B, random weights
    "125m": (12, 12, 768), "1.3b": (24, 16, 2048), "2.7b": (32, 20, 2560),
}


def load(args):
    from unlearn.models.gpt_neo_sdpa import enable_sdpa

    dtype = getattr(torch, args.dtype)
    if args.shape:
        from transformers import GPTNeoConfig, GPTNeoForCausalLM

        layers, heads, width = GPT_NEO_SHAPES[args.shape]
        config = GPTNeoConfig(vocab_size=50257, hidden_size=width, num_layers=layers, num_heads=heads,
                              attention_types=[[["global", "local"], layers // 2]], max_position_embeddings=2048)
        torch.manual_seed(0)
        model = enable_sdpa(GPTNeoForCausalLM(config)).to(dtype)
        name, pad = f"random GPT-Neo {args.shape}", 50256
    else:
        from tests.conftest import compose
        from unlearn.models.load import load_model

        cfg = compose(["model=smollm2"])
        model, tok = load_model(cfg.model, Path(cfg.paths.cache_dir).expanduser())
        model = model.to(dtype)
        name, pad = "SmolLM2-135M-Instruct", tok.pad_token_id
    return model.to(args.device).eval(), name, pad


def build_targets(model, n, length, corrupt, pad, seed):
    from unlearn.generation import decode

    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    prompts = torch.randint(0, vocab, (n, 4), generator=g).tolist()
    memorized = [p + o for p, o in zip(prompts, decode(model, prompts, length - 4, pad, batch_size=n))]
    unlearned = []
    for seq in memorized:
        seq = list(seq)
        for i in range(1, length):
            if torch.rand((), generator=g).item() < corrupt:
                seq[i] = int(torch.randint(0, vocab, (), generator=g))
        unlearned.append(seq)
    return memorized, unlearned


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def run(model, seqs, pad, batch_size):
    from unlearn.generation import teacher_forced
    from unlearn.generation.reference import generate_per_prefix_length
    from unlearn.metrics.memorization import memorization_accuracy, prefix_continuations

    def engine():
        tf = teacher_forced(model, seqs, pad, batch_size)
        return tf, prefix_continuations(model, tf, seqs, pad, batch_size=batch_size * 4)

    (tf, fast), t_engine = timed(engine)
    reference, t_ref = timed(lambda: generate_per_prefix_length(model, seqs, pad, batch_size))
    ma = memorization_accuracy(tf, seqs, [1] * len(seqs))
    return {"identical": fast == reference, "seconds_reference": round(t_ref, 3), "seconds_engine": round(t_engine, 3),
            "speedup": round(t_ref / t_engine, 2), "ma": round(sum(ma) / len(ma), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized: SmolLM2, 4 sequences of 32 tokens")
    parser.add_argument("--shape", choices=sorted(GPT_NEO_SHAPES), help="random GPT-Neo of this shape instead of SmolLM2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--corrupt", type=float, default=0.4)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decode-cache", default="auto", help="the engine's KV cache: auto, dynamic, static, compiled")
    args = parser.parse_args()
    if args.quick:
        args.n, args.length, args.shape, args.device = 4, 32, None, "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    model, name, pad = load(args)
    from unlearn.generation.static_cache import decode_mode, set_decode_mode

    set_decode_mode(model, args.decode_cache)
    memorized, unlearned = build_targets(model, args.n, args.length, args.corrupt, pad, args.seed)
    result = {"model": name, "device": args.device, "dtype": args.dtype, "n": args.n, "length": args.length,
              "decode_cache": decode_mode(model)}
    for label, seqs in (("memorized", memorized), ("unlearned", unlearned)):
        r = run(model, seqs, pad, args.batch_size)
        print(f"{label:9s} MA {r['ma']:.3f}  reference {r['seconds_reference']:8.2f} s  engine {r['seconds_engine']:7.2f} s"
              f"  speed-up {r['speedup']:7.1f}x  identical {r['identical']}", flush=True)
        result[label] = r
    result.update({
        "identical": result["memorized"]["identical"] and result["unlearned"]["identical"],
        "speedup_memorized": result["memorized"]["speedup"], "speedup_unlearned": result["unlearned"]["speedup"],
        "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    import transformers

    result["transformers"] = transformers.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
