"""The report's metric-sanity section: per job's target and oracle, the AUC separating their per-item
values for each memorization metric (unlearn/metrics/sanity.py), with metrics near 0.5 flagged."""
import json
from pathlib import Path

import pandas as pd

from unlearn.metrics.sanity import metric_sanity


def sanity_table(records: pd.DataFrame, root: Path, cfg) -> pd.DataFrame:
    rows = []
    jobs = records.drop_duplicates("job")[["job", "model_name", "data", "seed"]]
    for job in jobs.itertuples():
        path = Path(root) / job.job / "per_item.json"
        if not path.is_file():
            continue
        for r in metric_sanity(json.loads(path.read_text()), cfg.reference, cfg.control, list(cfg.splits), cfg.threshold):
            rows.append({"model": job.model_name, "data": job.data, "seed": job.seed, **r})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # The target and oracle are shared by every job on one memorized target: one row per (model, data, seed).
    return table.drop_duplicates(["model", "data", "seed", "split", "metric"]).reset_index(drop=True)


def sanity_section(records: pd.DataFrame, root: Path, out: Path, cfg) -> tuple[list[str], list[Path]]:
    table = sanity_table(records, root, cfg)
    if table.empty:
        return [], []
    table.to_csv(out / "sanity.csv", index=False)
    shown = table[["model", "data", "seed", "split", "metric", "auc", "n_reference", "n_control", "flagged"]].copy()
    shown["flagged"] = ["⚠ cannot tell target from oracle" if f else "" for f in shown.flagged]
    flagged = sorted(set(table[table.flagged].metric))
    md = ["", f"## Metric sanity: per-item AUC separating the {cfg.reference} from the {cfg.control}",
          "", f"AUC = P({cfg.reference} item > {cfg.control} item); |AUC − 0.5| < {cfg.threshold} is flagged: such a "
          "metric cannot tell a model that recites the data from one that never saw it, so its unlearning numbers "
          "mean little here." + (f" **Flagged: {', '.join(flagged)}.**" if flagged else " None flagged."), "",
          shown.to_markdown(index=False, floatfmt=".3f")]
    return md, [out / "sanity.csv"]
