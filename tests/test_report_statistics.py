"""Honest statistics in the report, on hand-written results: seeds aggregate to mean ± 95% t-interval with n,
`compare=A,B` runs a paired per-item test from per_item.json, and metric sanity flags a metric whose
per-item values cannot tell the target from the oracle."""
import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

T_975_DF2 = 4.302652729749464
ITEMS = [f"r{i}" for i in range(10)]
BASE = [0.05, 0.30, 0.12, 0.44, 0.21, 0.09, 0.37, 0.18, 0.26, 0.33]
TARGET_MA = [0.90, 0.95, 0.88, 0.97, 0.92, 0.91, 0.99, 0.93, 0.94, 0.96]
ORACLE_MA = [0.20, 0.35, 0.22, 0.41, 0.30, 0.25, 0.38, 0.28, 0.33, 0.31]
SAME_EM = [1, 2, 0, 3, 1, 2, 0, 1, 2, 3]  # identical for target and oracle: a metric that cannot separate them


def _job(root, name, method, seed, ma, per_item_ma, target_ma=0.93):
    records = [{"model": "target", "split": "forget", "metric": "MA", "value": target_ma, "n": 10, "details": {}},
               {"model": "oracle", "split": "forget", "metric": "MA", "value": 0.30, "n": 10, "details": {}},
               {"model": "unlearned", "split": "forget", "metric": "MA", "value": ma, "n": 10, "details": {}}]
    records += [{"model": role, "split": "utility", "metric": "PPL", "value": v, "n": 4, "details": {}}
                for role, v in (("target", 20.0), ("oracle", 21.0), ("unlearned", 22.0 + seed))]
    per_item = {role: {"forget": {"MA": {"ids": ITEMS, "values": values},
                                  "EM_len": {"ids": ITEMS, "values": SAME_EM}}}
                for role, values in (("target", TARGET_MA), ("oracle", ORACLE_MA), ("unlearned", per_item_ma))}
    job = root / name
    job.mkdir(parents=True)
    (job / "results.json").write_text(json.dumps({"run_name": name, "method": method, "model": "tiny", "data": "synthetic_pii",
                                                  "seed": seed, "strength": 1, "records": records}))
    (job / "per_item.json").write_text(json.dumps(per_item))
    (job / "config.yaml").write_text(yaml.safe_dump({"method": {"name": method, "strength_knob": "max_epochs", "max_epochs": 1}}))


def emso_items(seed):
    return [b + 0.02 * seed for b in BASE]


def ga_items(seed):
    return [b + 0.15 + 0.01 * ((i + seed) % 3) for i, b in enumerate(BASE)]


@pytest.fixture
def seed_sweep(tmp_path):
    root = tmp_path / "sweep"
    for seed, ma in zip((0, 1, 2), (0.1, 0.2, 0.6)):
        _job(root, f"{seed}_emso", "emso", seed, ma, emso_items(seed))
        _job(root, f"{3 + seed}_ga", "ga", seed, 0.5, ga_items(seed))
    return root


def report(root, *overrides):
    return subprocess.run([sys.executable, "-m", "unlearn.report", str(root), *overrides], cwd=REPO, capture_output=True,
                          text=True, timeout=180)


def test_seeds_aggregate_to_mean_and_t_interval_with_n_and_paired_compare(seed_sweep):
    proc = report(seed_sweep, "compare=emso,ga", "compare_options.n_resamples=1999")
    assert proc.returncode == 0, proc.stderr
    out = seed_sweep / "report"
    table = pd.read_csv(out / "table.csv")
    emso = table[(table.kind == "method") & (table.method == "emso")].iloc[0]
    sd = math.sqrt(((0.1 - 0.3) ** 2 + (0.2 - 0.3) ** 2 + (0.6 - 0.3) ** 2) / 2)
    assert emso.MA == pytest.approx(0.3) and emso.MA_n == 3 and emso.n_jobs == 3
    assert emso.MA_ci95 == pytest.approx(T_975_DF2 * sd / math.sqrt(3))
    ga = table[(table.kind == "method") & (table.method == "ga")].iloc[0]
    assert ga.MA == pytest.approx(0.5) and ga.MA_ci95 == pytest.approx(0.0)
    md = (out / "table.md").read_text()
    assert f"0.300 ± {T_975_DF2 * sd / math.sqrt(3):.3f}" in md and "| n |" in md.replace("|   n |", "| n |")

    # Paired per item over seeds: the difference is the mean over items of (mean over seeds of emso - ga).
    cmp = pd.read_csv(out / "compare_emso_vs_ga.csv")
    row = cmp[(cmp.split == "forget") & (cmp.metric == "MA")].iloc[0]
    per_item = [sum(emso_items(s)[i] - ga_items(s)[i] for s in range(3)) / 3 for i in range(10)]
    assert row.n_items == 10 and row.n_seeds == 3
    assert row["diff"] == pytest.approx(sum(per_item) / 10)
    assert row.ci_low < row["diff"] < row.ci_high < 0 and row.p_value < 0.01
    assert "compare_emso_vs_ga" in proc.stdout or "Paired comparison" in proc.stdout


def test_reference_rows_average_each_seeds_own_target_and_count_one_shared_target_once(tmp_path, seed_sweep):
    """Every seed memorizes its own target: the target row is their mean ± interval with n = seeds (it was
    the first job's target alone). Seeds over one shared target (identical values) count it once."""
    from omegaconf import OmegaConf

    from unlearn.reporting.write import write_report

    cfg = OmegaConf.load(REPO / "conf" / "report.yaml")
    root = tmp_path / "own_targets"
    for seed, target in zip((0, 1, 2), (0.91, 0.93, 0.98)):
        for method, offset in (("emso", 0), ("ga", 3)):
            _job(root, f"{offset + seed}_{method}", method, seed, 0.3, emso_items(seed), target_ma=target)
    write_report(root, cfg)
    table = pd.read_csv(root / "report" / "table.csv").set_index("method")
    sd = math.sqrt(((0.91 - 0.94) ** 2 + (0.93 - 0.94) ** 2 + (0.98 - 0.94) ** 2) / 2)
    assert table.at["target", "MA"] == pytest.approx(0.94) and table.at["target", "n_jobs"] == 3
    assert table.at["target", "MA_ci95"] == pytest.approx(T_975_DF2 * sd / math.sqrt(3))
    write_report(seed_sweep, cfg)  # every seed's target reads 0.93 / PPL 20: one model
    shared = pd.read_csv(seed_sweep / "report" / "table.csv").set_index("method")
    assert shared.at["target", "MA"] == pytest.approx(0.93) and shared.at["target", "n_jobs"] == 1


def test_metric_sanity_flags_a_metric_that_cannot_tell_target_from_oracle(seed_sweep):
    from omegaconf import OmegaConf

    from unlearn.reporting.write import write_report

    cfg = OmegaConf.load(REPO / "conf" / "report.yaml")
    write_report(seed_sweep, cfg)  # in-process: the CLI is exercised by the test above
    sanity = pd.read_csv(seed_sweep / "report" / "sanity.csv")
    ma = sanity[sanity.metric == "MA"]
    em = sanity[sanity.metric == "EM_len"]
    assert len(ma) == 3  # one row per seed's target/oracle pair, not per job
    assert (ma.auc == 1.0).all() and not ma.flagged.any()
    assert (em.auc == 0.5).all() and em.flagged.all()
    assert "Flagged: EM_len" in (seed_sweep / "report" / "table.md").read_text()
    cfg.sanity.threshold = 0.6  # |1.0 - 0.5| < 0.6: now MA is flagged too
    write_report(seed_sweep, cfg)
    assert pd.read_csv(seed_sweep / "report" / "sanity.csv").flagged.all()


def test_compare_with_an_absent_method_fails_with_one_line(seed_sweep):
    proc = report(seed_sweep, "compare=emso,kl")
    assert proc.returncode == 2
    assert "no job of method 'kl'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_variant_labels_drop_overrides_every_sweep_job_shares_even_beside_jobs_without_overrides():
    """Post-hoc methods below a MemSinks job have no overrides file; they once made `experiment=...` part of
    every other job's row label (nothing looked shared)."""
    from unlearn.reporting.collect import _variants

    infos = [{"overrides": ("experiment=x", "method.lr=1"), "knob": None},
             {"overrides": ("experiment=x", "method.lr=2"), "knob": None},
             {"overrides": (), "knob": None}]
    _variants(infos)
    assert [i["variant"] for i in infos] == ["method.lr=1", "method.lr=2", ""]
