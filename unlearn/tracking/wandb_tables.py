"""The erasure-utility trade-off of one job as W&B tables and plots.

`final_records`: every result record. `tradeoff`: one row per evaluated model (original, target,
unlearned, oracle) with forget-split memorization and utility-split generation metrics as columns, so
the plots show where unlearning moved the target; across a sweep, the W&B group puts jobs side by side.
"""
import wandb

# (x, y) pairs of EMSO Fig. 4: utility on x, erasure on y. Skipped when a column is missing.
TRADEOFF_PAIRS = [("utility/MAUVE", "forget/MA"), ("utility/MAUVE", "forget/EL_3"),
                  ("utility/PPL", "forget/MA"), ("utility/PPL", "forget/EL_3")]


def tradeoff_rows(records: list[dict]) -> tuple[list[str], list[list]]:
    columns = sorted({f"{r['split']}/{r['metric']}" for r in records if r.get("value") is not None})
    by_model: dict[str, dict] = {}
    for r in records:
        by_model.setdefault(r["model"], {})[f"{r['split']}/{r['metric']}"] = r.get("value")
    return ["model"] + columns, [[m] + [cells.get(c) for c in columns] for m, cells in by_model.items()]


def log_tables(run, records: list[dict], strength=None) -> None:
    final = wandb.Table(columns=["model", "split", "metric", "value", "n"],
                        data=[[r["model"], r["split"], r["metric"], r.get("value"), r.get("n")] for r in records])
    columns, rows = tradeoff_rows(records)
    tradeoff = wandb.Table(columns=columns + ["strength"], data=[row + [strength] for row in rows])
    payload = {"final_records": final, "tradeoff": tradeoff}
    for x, y in TRADEOFF_PAIRS:
        if x in columns and y in columns:
            name = f"tradeoff/{y.split('/')[1]}_vs_{x.split('/')[1]}"
            payload[name] = wandb.plot.scatter(tradeoff, x, y, title=f"{y} vs {x}")
    # Forget vs utility for whatever metrics this job has, so a run without MAUVE still gets a curve.
    forget = next((c for c in ("forget/MA", "forget/EL_3") if c in columns), None)
    utility = next((c for c in ("utility/PPL", "utility/MAUVE") if c in columns), None)
    if forget and utility:
        payload["tradeoff/forget_vs_utility"] = wandb.plot.line(tradeoff, utility, forget, title=f"{forget} vs {utility}")
    run.log(payload)
