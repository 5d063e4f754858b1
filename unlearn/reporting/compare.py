"""`compare=A,B`: is method A's unlearned model different from method B's, item by item?

For every metric with per-item values (per_item.json, role `unlearned`) in jobs of both methods on the
same model and data, items are paired by (seed, item id): each item's difference A - B is averaged over
the seeds both methods ran, and the items are the unit of resampling (unlearn/statistics.py
`paired_difference`: BCa bootstrap CI of the mean difference, sign-flip permutation p-value). Each
setting (strength, variant) of A is compared with each setting of B.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn.statistics import paired_difference


def parse_pair(value) -> tuple[str, str]:
    methods = [m.strip() for m in (value.split(",") if isinstance(value, str) else list(value)) if str(m).strip()]
    if len(methods) != 2 or methods[0] == methods[1]:
        raise ValueError(f"compare={value!r}: name two different methods, e.g. compare=emso,ga")
    return methods[0], methods[1]


def _per_item(root: Path, job: str, role: str) -> dict:
    path = root / job / "per_item.json"
    return (json.loads(path.read_text()).get(role) or {}) if path.is_file() else {}


def _setting(row) -> str:
    strength = "" if row.strength is None or pd.isna(row.strength) else f" {row.knob}={row.strength:g}"
    return f"{row.method}{strength}{f' ({row.variant})' if row.variant else ''}"


def _items(root: Path, jobs: pd.DataFrame, role: str) -> dict:
    """(split, metric) -> {(seed, item id): value} over the given jobs."""
    out: dict = {}
    for job in jobs.itertuples():
        for split, metrics in _per_item(root, job.job, role).items():
            for metric, items in metrics.items():
                if not items or items.get("values") is None:
                    continue
                for item_id, value in zip(items["ids"], items["values"]):
                    if value is not None:
                        out.setdefault((split, metric), {})[(job.seed, str(item_id))] = float(value)
    return out


def paired_table(records: pd.DataFrame, root: Path, a: str, b: str, opts) -> pd.DataFrame:
    root = Path(root)
    jobs = records.drop_duplicates("job")[["job", "method", "model_name", "data", "seed", "knob", "strength", "variant"]]
    found = set(jobs.method)
    missing = [m for m in (a, b) if m not in found]
    if missing:
        raise ValueError(f"compare: no job of method {missing[0]!r} below {root}; methods there: {sorted(found)}")
    splits = set(opts.get("splits") or []) or None
    metrics = set(opts.get("metrics") or []) or None
    rows = []
    for (model, data), group in jobs.groupby(["model_name", "data"], sort=False):
        settings_a = [g for _, g in group[group.method == a].groupby(["strength", "variant"], dropna=False, sort=False)]
        settings_b = [g for _, g in group[group.method == b].groupby(["strength", "variant"], dropna=False, sort=False)]
        for jobs_a in settings_a:
            items_a = _items(root, jobs_a, opts.get("role", "unlearned"))
            for jobs_b in settings_b:
                items_b = _items(root, jobs_b, opts.get("role", "unlearned"))
                for key in items_a.keys() & items_b.keys():
                    split, metric = key
                    if (splits and split not in splits) or (metrics and metric not in metrics):
                        continue
                    rows.append(_compare_one(items_a[key], items_b[key], opts) | {
                        "model": model, "data": data, "a": _setting(jobs_a.iloc[0]), "b": _setting(jobs_b.iloc[0]),
                        "split": split, "metric": metric})
    columns = ["model", "data", "a", "b", "split", "metric", "n_items", "n_seeds", "mean_a", "mean_b", "diff", "ci_low",
               "ci_high", "p_value"]
    return pd.DataFrame(rows, columns=columns)


def _compare_one(values_a: dict, values_b: dict, opts) -> dict:
    shared = values_a.keys() & values_b.keys()
    by_item: dict = {}
    for seed, item in shared:
        by_item.setdefault(item, []).append((values_a[(seed, item)], values_b[(seed, item)]))
    items = sorted(by_item)
    a = np.array([np.mean([p[0] for p in by_item[i]]) for i in items])
    b = np.array([np.mean([p[1] for p in by_item[i]]) for i in items])
    base = {"n_items": len(items), "n_seeds": len({s for s, _ in shared}),
            "mean_a": float(a.mean()) if len(a) else None, "mean_b": float(b.mean()) if len(b) else None}
    if len(items) < 2:
        return base | {"diff": None, "ci_low": None, "ci_high": None, "p_value": None}
    test = paired_difference(a, b, confidence=opts.get("confidence", 0.95), n_resamples=opts.get("n_resamples", 9999),
                             seed=opts.get("seed", 0))
    return base | {k: test[k] for k in ("diff", "ci_low", "ci_high", "p_value")}


def write_comparison(records: pd.DataFrame, root: Path, out: Path, cfg) -> tuple[list[Path], str]:
    a, b = parse_pair(cfg.compare)
    opts = cfg.get("compare_options") or {}
    table = paired_table(records, root, a, b, opts)
    stem = out / f"compare_{a}_vs_{b}"
    table.to_csv(stem.with_suffix(".csv"), index=False)
    level = int(round(100 * opts.get("confidence", 0.95)))
    md = [f"# Paired comparison: {a} vs {b} ({root})", "",
          f"Per item (paired by seed and item id, averaged over seeds), diff = mean({a} − {b}); "
          f"{level}% BCa bootstrap CI over items; p = two-sided sign-flip permutation test. "
          "Role: unlearned model of each job.", "",
          table.to_markdown(index=False, floatfmt=".4g") if len(table) else "No metric with per-item values in both methods."]
    text = "\n".join(md) + "\n"
    stem.with_suffix(".md").write_text(text)
    return [stem.with_suffix(".md"), stem.with_suffix(".csv")], text
