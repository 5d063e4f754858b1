"""Distance of each method to the retrain oracle of its own job: |metric(unlearned) - metric(oracle)|
per table column, and one summary: the mean over columns of the gap relative to the oracle's value.
Raw gaps cannot be averaged across columns (a perplexity gap of 90 would drown an MA gap of 0.1)."""
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
    # A zero oracle value has no relative scale: that column is left out of the job's mean.
    relative = (gaps / oracle.loc[jobs].abs().where(oracle.loc[jobs] != 0)).mean(axis=1)
    gaps = gaps.assign(mean_rel_gap=relative).join(unlearned.loc[jobs, STRENGTH_ROWS]).reset_index()
    gaps["strength"] = gaps.strength.astype(object)
    return gaps.groupby(STRENGTH_ROWS, dropna=False, sort=False)[metrics + ["mean_rel_gap"]].mean().reset_index()
