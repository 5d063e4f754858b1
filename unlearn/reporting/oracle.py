"""Distance of each method to the retrain oracle of its own job: |metric(unlearned) - metric(oracle)|
per table metric, and their mean over metrics (scale differs per metric, so read it per column too)."""
import pandas as pd

from unlearn.reporting.table import STRENGTH_ROWS, wide


def oracle_gap(records: pd.DataFrame, columns) -> pd.DataFrame | None:
    table, metrics = wide(records, columns)
    if not metrics or "oracle" not in set(table.role):
        return None
    key = ["job"]
    unlearned = table[table.role == "unlearned"].set_index(key)
    oracle = table[table.role == "oracle"].set_index(key)[metrics]
    jobs = unlearned.index.intersection(oracle.index)
    if jobs.empty:
        return None
    gaps = (unlearned.loc[jobs, metrics] - oracle.loc[jobs]).abs()
    gaps = gaps.join(unlearned.loc[jobs, STRENGTH_ROWS]).reset_index()
    gaps["strength"] = gaps.strength.astype(object)
    out = gaps.groupby(STRENGTH_ROWS, dropna=False, sort=False)[metrics].mean().reset_index()
    out["mean_abs_gap"] = out[metrics].mean(axis=1)
    return out
