"""One row per method, picked from its sweep by one rule that every method shares: a fair comparison.

A sweep gives each method the same number of settings (`experiment=fair_compare`); this module then picks,
for each (model, data, method), the setting the rule prefers, so no method is shown at a hand-picked
setting while another is shown at its paper default. The rule (`selection_rules.<name>` in
conf/report.yaml) is:

1. eligible: not collapsed, and the `constraint` column at most `max_ratio` x the memorized target's
   value (e.g. holdout perplexity within 1.1x the target's: erasure must not damage records like the
   forget set);
2. among the eligible rows, the one closest to the retrain oracle: the smallest mean over the `closeness`
   columns of |value - oracle| / |oracle| (relative, so EL_3 and MA weigh alike);
3. a method with no eligible row is listed with `selected=False` and its closest row, so the table says
   that it could not meet the constraint, instead of silently dropping it.

Rows on a target that never memorized the forget set are left out before any of this, as the ranking
leaves them out (table.md lists those runs).
"""
import pandas as pd

from unlearn.errors import ConfigError


def rule_of(cfg):
    name = cfg.get("select")
    rules = cfg.get("selection_rules") or {}
    if name not in rules:
        raise ConfigError(f"select={name!r} is not a rule in conf/report.yaml selection_rules; use one of {sorted(rules)}")
    return name, rules[name]


def _reference(block: pd.DataFrame, role: str, column: str, rule_name: str) -> float:
    row = block[(block.kind == "reference") & (block.method == role)]
    if row.empty or column not in row or pd.isna(row[column].iloc[0]):
        raise ConfigError(f"selection rule {rule_name!r} needs the {role}'s {column}, which this sweep did not evaluate; "
                          f"evaluate the {role} (eval.models) with that metric")
    return float(row[column].iloc[0])


def select_rows(rows: pd.DataFrame, cfg) -> pd.DataFrame:
    """`rows` from `method_table`: one row per (model, data, method, variant) chosen by the rule, with its
    `oracle_distance`, whether it met the constraint (`selected`) and how many settings were tried."""
    name, rule = rule_of(cfg)
    closeness = list(rule.closeness)
    constraint = rule.constraint
    needed = closeness + [constraint.column]
    missing = [c for c in needed if c not in rows.columns]
    if missing:
        raise ConfigError(f"selection rule {name!r} reads column(s) {missing}, which no job produced; add them to the "
                          "sweep's eval.metrics and to the report's columns")
    out = []
    for _, block in rows.groupby(["model_name", "data"], sort=False):
        oracle = {c: _reference(block, "oracle", c, name) for c in closeness}
        limit = constraint.max_ratio * _reference(block, "target", constraint.column, name)
        # A row whose target never memorized the forget set had nothing to erase: never picked, as never ranked.
        methods = block[(block.kind == "method") & ~block.not_memorized.astype(bool)].copy()
        # A zero oracle value has no relative scale: that column is measured in absolute terms.
        methods["oracle_distance"] = sum((methods[c] - oracle[c]).abs() / (abs(oracle[c]) or 1.0) for c in closeness) / len(closeness)
        methods["eligible"] = methods[constraint.column] <= limit
        if rule.get("exclude_collapsed", True):
            methods["eligible"] &= ~methods.collapsed.astype(bool)
        for _, group in methods.groupby(["method", "variant"], sort=False, dropna=False):
            pool = group[group.eligible] if group.eligible.any() else group
            best = pool.sort_values(["oracle_distance", "strength"], kind="stable").iloc[0]
            out.append({**best.to_dict(), "selected": bool(group.eligible.any()), "n_settings": len(group),
                        "constraint_limit": limit})
    return pd.DataFrame(out)


def to_markdown(selected: pd.DataFrame, cfg) -> str:
    name, rule = rule_of(cfg)
    closeness = list(rule.closeness)
    c = rule.constraint
    shown = pd.DataFrame({
        "model": selected.model_name,
        "method": [f"{m} ({v})" if v else m for m, v in zip(selected.method, selected.variant)],
        "setting": [f"{k}={s:g}" if k and not pd.isna(s) else "" for k, s in zip(selected.knob, selected.strength)],
        "settings tried": selected.n_settings,
        **{col: selected[col].map(lambda v: "—" if pd.isna(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}")
           for col in dict.fromkeys(closeness + [c.column])},
        "oracle distance": selected.oracle_distance.map(lambda v: f"{v:.3f}"),
        "meets rule": ["yes" if s else f"no: every setting has {c.column} > {c.max_ratio:g}x target or collapsed"
                       for s in selected.selected],
    })
    header = (f"Rule `{name}`: per method, the setting closest to the retrain oracle (mean |x − oracle| / |oracle| "
              f"over {', '.join(closeness)}) among settings with {c.column} ≤ {c.max_ratio:g}× the memorized target's "
              "and not collapsed.")
    return header + "\n\n" + shown.to_markdown(index=False)
