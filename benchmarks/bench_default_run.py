"""Time the default run's stages, and EL_n's prefix reuse against naive decoding.

Absolute seconds depend on the machine, so every figure is also printed as a ratio to a baseline
measured in the same process: one forward+backward pass of the model on one training batch.

    python benchmarks/bench_default_run.py                # default SmolLM2 run, warm cache
    python benchmarks/bench_default_run.py --cold         # what a new user runs: `python -m unlearn.run` on an
                                                          # empty cache (dequantize, memorize, evaluate all four)
    python benchmarks/bench_default_run.py model=tiny-gpt-neo memorize.lr=3e-3 memorize.max_epochs=80
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
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


def _versions() -> dict:
    import pytorch_lightning
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "pytorch_lightning": pytorch_lightning.__version__, "cpus": os.cpu_count(), "machine": platform.machine()}


def _value(records, model, split, metric):
    return next((r["value"] for r in records if (r["model"], r["split"], r["metric"]) == (model, split, metric)), None)


def cold_run(overrides) -> dict:
    """`python -m unlearn.run` in a child process on an empty cache, as a new user runs it: wall clock, the
    child's CPU seconds (user + system: less sensitive to other jobs on the machine than wall time), the
    load average around it, and the stage timings and headline numbers from its results.json."""
    cache, out = tempfile.mkdtemp(prefix="unlearn-bench-cache-"), tempfile.mkdtemp(prefix="unlearn-bench-out-")
    env = {**os.environ, "UNLEARN_CACHE_DIR": cache, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "unlearn.run", f"paths.output_dir={out}", "trainer.progress_bar=false", *overrides]
    load_before, before, start = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"the cold run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        (path,) = list(Path(out).rglob("results.json"))
        results = json.loads(path.read_text())
        table_md = path.with_name("results.md").read_text()
    finally:  # about 2 GB of models: never leave them in /tmp
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    records = results["records"]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "command": "python -m unlearn.run " + " ".join(overrides) + "  (empty UNLEARN_CACHE_DIR)",
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
        "load_avg_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        "timings_s": results["timings_s"],
        "memorize": {k: results["memorize"].get(k) for k in ("status", "epochs", "steps", "forget_ma")},
        "table": {f"{m}/{s}/{k}": _value(records, m, s, k) for m in ("original", "target", "unlearned", "oracle")
                  for s, k in (("forget", "MA"), ("forget", "EL_3"), ("utility", "PPL"), ("holdout", "PPL"))},
        "results_md": table_md,
        "versions": _versions(),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="`python -m unlearn.run` on an empty cache, in a child process")
    parser.add_argument("--json", help="append the cold run's record (one JSON line) to this file")
    args, overrides = parser.parse_known_args()
    if args.cold:
        record = cold_run(overrides)
        print(json.dumps(record, indent=1))
        print(f"\ncold run: {record['wall_s']:.0f} s wall ({record['wall_s'] / 60:.1f} min), {record['cpu_s']:.0f} s CPU, "
              f"load average {record['load_avg_1min']['before']} -> {record['load_avg_1min']['after']} on {os.cpu_count()} CPUs")
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(record) + "\n")
        return
    from tests.conftest import compose
    from unlearn.workflows.run_pipeline import run_pipeline

    cfg = compose(["trainer.progress_bar=false", "save_model=false", *overrides])
    with tempfile.TemporaryDirectory() as run_dir:
        results = run_pipeline(cfg, Path(run_dir))

    from unlearn.data.encode import encode_split
    from unlearn.models.load import load_model
    from unlearn.workflows.run_pipeline import build_splits

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
