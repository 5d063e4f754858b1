"""Time an eval suite (default: emso_table1 on SmolLM2) and show where the time goes.

Absolute seconds depend on the machine (and on what else runs on it), so every figure is also a
ratio to a baseline measured in the same process: one teacher-forced forward pass of the model over
a batch of `eval.batch_size` sequences of WikiText-generation length (prompt + new tokens).

Two views: per metric (its own seconds; a metric that is first to need a shared pass pays for it),
and per shared pass (exclusive seconds of each memoized computation: teacher-forced passes, prefix
continuations, sampled generations, scorer passes, MAUVE features).

    python benchmarks/bench_eval_suite.py                          # emso_table1, SmolLM2, CPU-sized
    python benchmarks/bench_eval_suite.py eval=tofu eval.tofu.limit=4
    python benchmarks/bench_eval_suite.py eval.wikitext.n=64 model=local model.name_or_path=/path
"""
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def forward_baseline(model, batch_size: int, length: int, vocab: int) -> float:
    ids = torch.randint(0, vocab, (batch_size, length))
    times = []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
            times.append(time.perf_counter() - start)
    return min(times)


class MemoTimer:
    """Exclusive seconds per memoized computation kind (nested memo calls are not double counted)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []

    def install(self):
        from unlearn.metrics.context import EvalContext

        original = EvalContext.memo
        timer = self

        def memo(ctx, key, compute):
            if key in ctx._memo:
                return ctx._memo[key]
            frame = [time.perf_counter(), 0.0]
            timer._stack.append(frame)
            try:
                return original(ctx, key, compute)
            finally:
                timer._stack.pop()
                total = time.perf_counter() - frame[0]
                timer.seconds[str(key[0])] += total - frame[1]
                if timer._stack:
                    timer._stack[-1][1] += total

        EvalContext.memo = memo


def main():
    from tests.conftest import compose
    from unlearn.workflows.evaluate_saved import run_evaluation
    from unlearn.models.load import load_model

    overrides = sys.argv[1:]
    cfg = compose(["eval=emso_table1", *overrides], config_name="evaluate")
    model, _ = load_model(cfg.model, Path(cfg.paths.cache_dir).expanduser())
    wiki = cfg.eval.get("wikitext") or {}
    length = int(wiki.get("prompt_tokens", 32)) + int(wiki.get("max_new_tokens", 128))
    base = forward_baseline(model, cfg.eval.batch_size, length, model.get_input_embeddings().num_embeddings)
    del model

    timer = MemoTimer()
    timer.install()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        results = run_evaluation(cfg, Path(out))
        wall = time.perf_counter() - start

    print(f"\nbaseline: one forward of {cfg.eval.batch_size} x {length} tokens = {base:.3f}s "
          f"(torch threads: {torch.get_num_threads()})")
    print(f"suite {cfg.eval.name}: {wall:.1f}s wall = {wall / base:.0f} x baseline; load {results['timings_s']['load']:.1f}s\n")
    print(f"{'metric':<28}{'seconds':>9}{'share':>8}{'x base':>9}  note")
    for r in results["records"]:
        sec = r["details"].get("seconds", 0.0)
        note = "skipped: " + r["details"]["skipped"][:60] if r["value"] is None else ""
        print(f"{r['split'] + '/' + r['metric']:<28}{sec:>9.2f}{sec / wall:>8.0%}{sec / base:>9.1f}  {note}")
    print(f"\n{'shared pass (exclusive)':<28}{'seconds':>9}{'share':>8}{'x base':>9}")
    for kind, sec in sorted(timer.seconds.items(), key=lambda kv: -kv[1]):
        print(f"{kind:<28}{sec:>9.2f}{sec / wall:>8.0%}{sec / base:>9.1f}")
    rest = wall - sum(timer.seconds.values()) - results["timings_s"]["load"]
    print(f"{'(outside memoized passes)':<28}{rest:>9.2f}{rest / wall:>8.0%}{rest / base:>9.1f}"
          "  encoder loads, library imports, scoring")


if __name__ == "__main__":
    main()
