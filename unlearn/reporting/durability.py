"""Durability table (eval.attacks): for each method, attack and forget-set metric, the clean and the
attacked value of the unlearned model next to the target (ceiling) and the retrain oracle (control) under
the identical attack. `excess` = attacked unlearned − attacked oracle: what the attack brings back beyond
what it teaches a model that never saw the forget set. Then the worst case per method and metric: the
attack whose excess is worst in the metric's declared direction (conf/report.yaml `columns.better`: the
largest excess where lower is better, the smallest where higher is, the farthest from 0 for PrivLeak's
`zero`). `recovered` = attacked unlearned − clean unlearned: what the attack brought
back at all. Seeds are averaged (n = jobs); each `_ci95` is the half-width of the 95% t-interval over the
jobs' own differences (each job's unlearned model against its own clean value, or against the oracle of
that job's seed), so the seed-to-seed spread of target and oracle is paired out rather than added in."""
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
    # One row per (method, attack, metric, job): each role's attacked value in that job.
    per_job = attacked.pivot_table(index=keys + ["attack", "metric", "job"], columns="base", values="value", aggfunc="mean",
                                   sort=False)  # rows in attack order, as the battery ran them
    per_job = per_job.reindex(columns=list(ROLES)).reset_index()
    clean_rows = records[(records.role == "unlearned") & (records.split == "forget")]
    clean = clean_rows.set_index(["job", "metric"]).value.to_dict()
    own = per_job.set_index(keys + ["attack", "metric", "job"]).unlearned.to_dict()
    nan = float("nan")
    # The attack's own baseline where it has one (relearning's step 0, perturbation's original prompt), else the clean evaluation.
    per_job["clean"] = [own.get((*r[:len(keys)], _clean_variant(r.attack), r.metric, r.job), clean.get((r.job, r.metric), nan))
                        for r in per_job[keys + ["attack", "metric", "job"]].itertuples(index=False)]
    per_job["excess"] = per_job.unlearned - per_job.oracle
    per_job["recovered"] = per_job.unlearned - per_job.clean
    rows = []
    for (*key, attack, metric), group in per_job.groupby(keys + ["attack", "metric"], sort=False):
        row = {**dict(zip(keys, key)), "attack": attack, "metric": metric, "n": int(group.unlearned.count()),
               **{f"{role}_attacked": group[role].mean() for role in ROLES}, "unlearned_clean": group.clean.mean()}
        for column in ("recovered", "excess"):
            row[column], row[f"{column}_ci95"], _ = t_interval(list(group[column]))
        rows.append(row)
    return pd.DataFrame(rows)[keys + ["attack", "metric", "n", "target_attacked", "oracle_attacked", "unlearned_clean",
                                      "unlearned_attacked", "recovered", "recovered_ci95", "excess", "excess_ci95"]]


def forget_directions(columns) -> dict[str, str]:
    """metric -> its declared direction on the forget split (`better` in the report's columns)."""
    return {c.metric: c.better for c in columns if c.split == "forget"}


def harm(excess: float, better: str) -> float:
    """How much worse than the oracle an excess is, for a metric whose `better` is lower / higher / zero."""
    return {"lower": excess, "higher": -excess, "zero": abs(excess)}[better]


def worst_case(table: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """Per method and metric: the clean value and the attack whose excess over the oracle is worst in the
    metric's direction (`directions`: metric -> lower / higher / zero). A metric the report's columns do not
    declare (the attacks' own EM_len, MA_cont) counts as lower-is-better: it measures what is remembered."""
    keys = ["model_name", "data", "method", "variant", "metric"]
    usable = table[~table.attack.map(_is_baseline)].dropna(subset=["excess"])
    usable = usable.assign(harm=[harm(e, directions.get(m, "lower")) for m, e in zip(usable.metric, usable.excess)])
    idx = usable.groupby(keys, dropna=False).harm.idxmax()
    worst = usable.loc[idx, keys + ["unlearned_clean", "attack", "unlearned_attacked", "oracle_attacked", "excess", "excess_ci95"]]
    return worst.rename(columns={"attack": "worst_attack"}).reset_index(drop=True)


def durability_section(records: pd.DataFrame, out: Path, columns) -> list[str]:
    """Writes durability.csv / durability_worst.csv into `out`; returns the markdown lines (none without attacks).
    `columns`: the report's columns, whose `better` says which way each forget-set metric is worse."""
    table = durability_table(records)
    if table is None:
        return []
    worst = worst_case(table, forget_directions(columns))
    table.to_csv(Path(out) / "durability.csv", index=False)
    worst.to_csv(Path(out) / "durability_worst.csv", index=False)
    shown = table[~table.attack.str.endswith(":original")].drop(columns=["model_name", "data"] + (["variant"] if not table.variant.any() else []))
    return ["", "## Durability under attack (forget set; recovered = attacked − clean unlearned; excess = attacked "
            "unlearned − attacked oracle; _ci95 = half-width of the 95% t-interval over seeds, blank for one seed)", "",
            shown.to_markdown(index=False, floatfmt=".3f"), "",
            "### Worst case per method (the attack with the worst excess in each metric's direction)", "",
            worst.drop(columns=["model_name", "data"] + (["variant"] if not worst.variant.any() else [])).to_markdown(index=False, floatfmt=".3f")]
