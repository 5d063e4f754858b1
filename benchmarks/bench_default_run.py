"""Time the default run's stages, and EL_n's prefix reuse against naive decoding.

Absolute seconds depend on the machine, so every figure is also printed as a ratio to a baseline
measured in the same process: one forward+backward pass of the model on one training batch.

    python benchmarks/bench_default_run.py                # default SmolLM2 run, warm cache
    python benchmarks/bench_default_run.py --cold         # fresh cache: dequantize + memorize too
    python benchmarks/bench_default_run.py model=tiny-gpt-neo memorize.lr=3e-3 memorize.max_epochs=80
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def step_baseline(model, tokenizer, seqs, batch_size: int) -> float:
    from unlearn.data.collate import Collator, SequenceDataset
    from unlearn.data.encode import EncodedSplit
    from unlearn.methods.losses import mean_nll

    ds = SequenceDataset(EncodedSplit([str(i) for i in range(len(seqs))], seqs, [1] * len(seqs)))
    batch = Collator(tokenizer.pad_token_id)([ds[i] for i in range(min(batch_size, len(ds)))])
    model.train()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        loss = mean_nll(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
        loss.backward()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    model.eval()
    return min(times)


def el_reuse_vs_naive(model, tokenizer, seqs) -> tuple[float, float]:
    from unlearn.generation import decode, teacher_forced
    from unlearn.metrics.memorization import prefix_continuations

    start = time.perf_counter()
    tf = teacher_forced(model, seqs, tokenizer.pad_token_id)
    prefix_continuations(model, tf, seqs, tokenizer.pad_token_id, batch_size=64)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for seq in seqs:  # the reference way: one decode call per prefix length, batched over prefixes
        decode(model, [seq[:i] for i in range(1, len(seq))], [len(seq) - i for i in range(1, len(seq))], tokenizer.pad_token_id, batch_size=64)
    return fast, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="use an empty cache (measures dequantize + memorize)")
    args, overrides = parser.parse_known_args()
    from tests.conftest import compose
    from unlearn.pipeline import run_pipeline

    cache = tempfile.mkdtemp(prefix="unlearn-bench-cache-") if args.cold else None
    extra = [f"paths.cache_dir={cache}"] if cache else []
    cfg = compose(["trainer.progress_bar=false", "save_model=false", *extra, *overrides])
    with tempfile.TemporaryDirectory() as run_dir:
        results = run_pipeline(cfg, Path(run_dir))

    from unlearn.data.encode import encode_split
    from unlearn.models.load import load_model
    from unlearn.pipeline import build_splits

    splits = build_splits(cfg.data, cfg.paths.data_root)
    model, tok = load_model(cfg.model, Path(cfg.paths.cache_dir).expanduser(), corpus=[r.text for r in splits.forget + splits.retain + splits.holdout])
    enc = encode_split(splits.holdout, tok, model.get_input_embeddings().num_embeddings, False, cfg.eval.prefix_len)
    base = step_baseline(model, tok, enc.input_ids, cfg.method.batch_size)

    timings = results["timings_s"]
    total = sum(timings.values())
    print(f"\nbaseline: one forward+backward on a batch of {cfg.method.batch_size} = {base:.2f}s  (torch threads: {torch.get_num_threads()})")
    print(f"{'stage':<14}{'seconds':>9}{'share':>8}{'x baseline':>12}")
    for stage, sec in timings.items():
        print(f"{stage:<14}{sec:>9.1f}{sec / total:>8.0%}{sec / base:>12.1f}")
    print(f"{'total':<14}{total:>9.1f}{'':>8}{total / base:>12.1f}")
    fast, naive = el_reuse_vs_naive(model, tok, enc.input_ids[:2])
    print(f"\nEL_n prefix continuations on 2 unmemorized records: reuse {fast:.1f}s vs naive {naive:.1f}s -> {naive / fast:.2f}x")


if __name__ == "__main__":
    main()
