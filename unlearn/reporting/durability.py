"""Durability table (eval.attacks): for each method, attack and forget-set metric, the clean and the
attacked value of the unlearned model next to the target (ceiling) and the retrain oracle (control) under
the identical attack. `excess` = attacked unlearned − attacked oracle: what the attack brings back beyond
what it teaches a model that never saw the forget set. Then the worst case per method and metric: the
attack with the largest excess. Seeds are averaged (n = jobs); `excess_ci95` is the half-width of the 95%
t-interval over the jobs' own excesses (each job's unlearned minus the oracle of that job's seed, so the
seed-to-seed spread of the target and oracle is paired out rather than added in)."""
from pathlib import Path

import pandas as pd

from unlearn.statistics import t_interval

ROLES = ("target", "oracle", "unlearned")


def attacked_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Forget-split records of attacked models, with `base` role and `attack` variant split from `role@variant`."""
    attacked = records[records.role.str.contains("@", regex=False) & (records.split == "forget")].copy()
    if attacked.empty:
        return attacked
    parts = attacked.role.str.split("@", n=1, expand=True)
    return attacked.assign(base=parts[0], attack=parts[1])


def _clean_variant(attack: str) -> str | None:
    """The attacked variant that is this attack's clean baseline: step 0 of a relearning sweep (measured on
    the same held-back records: `relearn_forget:10` -> `relearn_forget:0`), the original prompt of a
    perturbation (`perturb` -> `perturb:original`); None = the clean evaluation itself."""
    name, _, step = attack.partition(":")
    if step.isdigit():
        return f"{name}:0"
    return f"{name}:original" if not step else None


def _is_baseline(attack: str) -> bool:
    return attack.endswith(":0") or attack.endswith(":original")


def durability_table(records: pd.DataFrame) -> pd.DataFrame | None:
    attacked = attacked_frame(records)
    if attacked.empty:
        return None
    keys = ["model_name", "data", "method", "variant"]
    attacked = attacked.assign(variant=attacked.variant.fillna(""))
    values = attacked.groupby(keys + ["attack", "metric", "base"], sort=False).value
    means, counts = values.mean().to_dict(), values.count().to_dict()
    per_job = attacked.pivot_table(index=keys + ["attack", "metric", "job"], columns="base", values="value", aggfunc="mean")
    spread = {}
    if {"unlearned", "oracle"} <= set(per_job.columns):
        paired = (per_job["unlearned"] - per_job["oracle"]).dropna()
        spread = paired.groupby(level=list(range(len(keys) + 2)), sort=False).agg(lambda v: t_interval(list(v))[1]).to_dict()
    clean_rows = records[(records.role == "unlearned") & (records.split == "forget")]
    clean = clean_rows.assign(variant=clean_rows.variant.fillna("")).groupby(keys + ["metric"]).value.mean().to_dict()
    nan = float("nan")
    rows = []
    for combo in attacked[keys + ["attack", "metric"]].drop_duplicates().itertuples(index=False):
        *key, attack, metric = combo
        key = tuple(key)
        baseline = _clean_variant(attack)
        row = {**dict(zip(keys, key)), "attack": attack, "metric": metric, "n": counts.get(key + (attack, metric, "unlearned"), 0),
               **{f"{role}_attacked": means.get(key + (attack, metric, role), nan) for role in ROLES},
               "unlearned_clean": means.get(key + (baseline, metric, "unlearned"), clean.get(key + (metric,), nan))}
        row["excess"] = row["unlearned_attacked"] - row["oracle_attacked"]
        row["excess_ci95"] = spread.get(key + (attack, metric), nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    return table[keys + ["attack", "metric", "n", "target_attacked", "oracle_attacked", "unlearned_clean", "unlearned_attacked", "excess",
                  "excess_ci95"]]


def worst_case(table: pd.DataFrame) -> pd.DataFrame:
    """Per method and metric: the clean value and the attack with the largest excess over the oracle."""
    keys = ["model_name", "data", "method", "variant", "metric"]
    usable = table[~table.attack.map(_is_baseline)].dropna(subset=["excess"])
    idx = usable.groupby(keys, dropna=False).excess.idxmax()
    worst = usable.loc[idx, keys + ["unlearned_clean", "attack", "unlearned_attacked", "oracle_attacked", "excess", "excess_ci95"]]
    return worst.rename(columns={"attack": "worst_attack"}).reset_index(drop=True)


def durability_section(records: pd.DataFrame, out: Path) -> list[str]:
    """Writes durability.csv / durability_worst.csv into `out`; returns the markdown lines (none without attacks)."""
    table = durability_table(records)
    if table is None:
        return []
    worst = worst_case(table)
    table.to_csv(Path(out) / "durability.csv", index=False)
    worst.to_csv(Path(out) / "durability_worst.csv", index=False)
    shown = table[~table.attack.str.endswith(":original")].drop(columns=["model_name", "data"] + (["variant"] if not table.variant.any() else []))
    return ["", "## Durability under attack (forget set; excess = attacked unlearned − attacked oracle; excess_ci95 = "
            "half-width of its 95% t-interval over seeds, blank for one seed)", "",
            shown.to_markdown(index=False, floatfmt=".3f"), "",
            "### Worst case per method (the attack with the largest excess)", "",
            worst.drop(columns=["model_name", "data"] + (["variant"] if not worst.variant.any() else [])).to_markdown(index=False, floatfmt=".3f")]
