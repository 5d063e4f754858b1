"""EMSO Table 1 shape: rows = reference models and methods (at each strength), columns = metrics on
their configured split; collapsed rows marked and left out of the best / second-best ranking."""
import pandas as pd

from unlearn.statistics import t_interval

STRENGTH_ROWS = ["model_name", "data", "method", "variant", "strength"]


def column_name(column) -> str:
    """A column's header: its `label`, or the metric name (a label tells one metric on two splits apart)."""
    return column.get("label") or column.metric


def better_by_column(columns) -> dict[str, str]:
    return {column_name(c): c.better for c in columns}


def wide(records: pd.DataFrame, columns) -> pd.DataFrame:
    """One row per (role, job) with a column per configured metric taken from its split."""
    keep = pd.concat([records[(records.metric == c.metric) & (records.split == c.split)].assign(column=column_name(c))
                      for c in columns]) if len(records) else records.assign(column=records.metric)
    table = keep.pivot_table(index=["job", "role"], columns="column", values="value", aggfunc="first")
    info = records.drop_duplicates("job").set_index("job")[["method", "model_name", "data", "seed", "knob", "strength", "variant",
                                                             "memorized"]]
    table = table.reset_index().join(info, on="job")
    present = [column_name(c) for c in columns if column_name(c) in table.columns]
    return table, present


def collapse_flags(records: pd.DataFrame, cfg) -> pd.Series:
    """(job, role) -> collapsed. Explicit flag records win (any of them at 1.0); else any threshold that trips."""
    flags = {}
    names = [cfg.record] if isinstance(cfg.record, str) else list(cfg.record)
    for (job, role), group in records.groupby(["job", "role"]):
        explicit = group[group.metric.isin(names)]
        if len(explicit):
            flags[(job, role)] = bool((explicit.value >= 1.0).any())
            continue
        target = records[(records.job == job) & (records.role == "target")]
        tripped = False
        for t in cfg.thresholds:
            value = group[(group.metric == t.metric) & (group.split == t.split)].value
            if value.empty or pd.isna(value.iloc[0]):
                continue
            v = value.iloc[0]
            ref = target[(target.metric == t.metric) & (target.split == t.split)].value
            tripped |= ("max" in t and v > t.max) or ("min" in t and v < t.min) or \
                       ("max_ratio" in t and not ref.empty and v > t.max_ratio * ref.iloc[0])
        flags[(job, role)] = bool(tripped)
    return pd.Series(flags, dtype=bool)


def method_table(records: pd.DataFrame, cfg) -> tuple[pd.DataFrame, list[str]]:
    """Rows: each model's reference roles (averaged over the distinct reference models) then every
    (method, strength), seeds averaged."""
    table, metrics = wide(records, cfg.columns)
    flags = collapse_flags(records, cfg.collapse)
    table["collapsed"] = [bool(flags.get((j, r), False)) for j, r in zip(table.job, table.role)]
    # A run whose target never memorized the forget set has nothing to erase: flagged, never ranked.
    table["not_memorized"] = ~table.memorized.astype(bool)
    refs = reference_rows(table[table.role.isin(list(cfg.references))], metrics)
    order = {role: i for i, role in enumerate(cfg.references)}
    refs = refs.sort_values("role", key=lambda r: r.map(order), kind="stable")
    methods = table[table.role == "unlearned"].copy()
    methods["strength"] = methods.strength.astype(object)
    methods = seed_average(methods.groupby(STRENGTH_ROWS, dropna=False, sort=False), metrics, first=("knob",))
    rows = pd.concat([refs.assign(kind="reference"), methods.assign(kind="method")], ignore_index=True)
    # One block per (model, data), in first-seen order: its references, then its methods.
    block = pd.Series(list(zip(rows.model_name, rows.data)), index=rows.index)
    first = {key: i for i, key in enumerate(dict.fromkeys(block))}
    rows = rows.iloc[sorted(rows.index, key=lambda i: (first[block[i]], rows.kind[i] != "reference"))].reset_index(drop=True)
    rows["label"] = [f"{m} ({v})" if v else m for m, v in zip(rows.method, rows.variant)]
    spread = [c for m in metrics for c in (f"{m}_ci95", f"{m}_n")]
    return rows[["model_name", "data", "kind", "method", "variant", "label", "knob", "strength", "n_jobs", "collapsed",
                 "not_memorized"]
                + metrics + spread], metrics


def reference_rows(refs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (model, data, reference role), averaged over the distinct reference models: every seed
    memorizes its own target and oracle, which all of that seed's jobs share. Rows with the same values are
    one model counted once (a seed sweep over one given target, `memorize=none`), so n counts models, not jobs."""
    keys = ["model_name", "data", "role"]
    refs = refs.drop_duplicates(keys + ["seed"]).drop_duplicates(keys + metrics)
    out = seed_average(refs.groupby(keys, sort=False), metrics)
    return out.assign(method=out.role, strength=None, knob=None, variant="")


def seed_average(grouped, metrics: list[str], first: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per group: each metric's mean and t-interval (seed_spread), whether any job collapsed or had an
    unmemorized target, the job count n_jobs, and the first value of each column in `first`."""
    agg = {m: "mean" for m in metrics} | {"collapsed": "any", "not_memorized": "any", "job": "count"} | {c: "first" for c in first}
    out = grouped.agg(agg).rename(columns={"job": "n_jobs"}).reset_index()
    return out.join(seed_spread(grouped, metrics).reset_index(drop=True))


def seed_spread(grouped, metrics: list[str]) -> pd.DataFrame:
    """Per row and metric: the half-width of the 95% t-interval over the row's jobs (seeds) and their
    count n (NaN half-width for one job)."""
    out = {}
    for m in metrics:
        stats = grouped[m].agg(lambda v: t_interval(list(v)))
        out[f"{m}_ci95"] = [s[1] for s in stats]
        out[f"{m}_n"] = [s[2] for s in stats]
    return pd.DataFrame(out)


def rank_marks(rows: pd.DataFrame, cfg, metrics: list[str]) -> pd.DataFrame:
    """'best' / 'second' per metric among non-collapsed methods on memorized targets of the same model and data."""
    better = better_by_column(cfg.columns)
    marks = pd.DataFrame("", index=rows.index, columns=metrics)
    ranked = rows[(rows.kind == "method") & ~rows.collapsed & ~rows.not_memorized]
    for _, group in ranked.groupby(["model_name", "data"], sort=False):
        for m in metrics:
            values = group[m].dropna()
            values = values.abs() if better[m] == "zero" else values  # PrivLeak: closest to 0 is best
            order = values.rank(method="min", ascending=better[m] in ("lower", "zero"))
            marks.loc[order[order == 1].index, m] = "best"
            marks.loc[order[order == 2].index, m] = "second"
    return marks


def _fmt(value) -> str:
    if value is None or pd.isna(value):
        return "—"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def _cell(rows: pd.DataFrame, i, m: str) -> str:
    """mean ± 95% CI half-width when the row averages several jobs (seeds), the plain value otherwise."""
    half = rows.at[i, f"{m}_ci95"] if f"{m}_ci95" in rows.columns else None
    if half is None or pd.isna(half):
        return _fmt(rows.at[i, m])
    return f"{_fmt(rows.at[i, m])} ± {_fmt(half)}"


def to_markdown(rows: pd.DataFrame, marks: pd.DataFrame, metrics: list[str]) -> str:
    """**best**, _second_; collapsed rows get a †, rows on a target that was not memorized a ‡, and no marks.
    `n` = jobs (seeds) behind each row."""
    shown = pd.DataFrame(index=rows.index)
    shown["model"] = rows.model_name
    shown["method"] = [f"{m}{'†' if c else ''}{'‡' if n else ''}" for m, c, n in zip(rows.label, rows.collapsed, rows.not_memorized)]
    shown["strength"] = [("" if pd.isna(s) else f"{k}={s:g}") if s is not None else "" for k, s in zip(rows.knob, rows.strength)]
    shown["n"] = rows.n_jobs.astype(int)
    for m in metrics:
        style = {"best": "**{}**", "second": "_{}_", "": "{}"}
        shown[m] = [style[marks.at[i, m]].format(_cell(rows, i, m)) for i in rows.index]
    return shown.to_markdown(index=False)


def to_csv_frame(rows: pd.DataFrame, marks: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    return rows.join(marks.add_suffix("_mark"))
