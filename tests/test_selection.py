"""`python -m unlearn.report <sweep> select=closest_to_oracle`: one row per method, picked from its settings
by one rule (closest to the oracle on EL_3/MA, holdout perplexity within 1.1x the target's, not collapsed);
and the fair_compare experiment gives every method the same number of settings and one schedule."""
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO, compose
from tests.test_experiments import compose_with_hydra
from tests.test_report import _job
from unlearn.sweeps.jobs import apply_strength, strength_of

# Oracle in _job: EL_3 0.05, MA 0.2; target holdout PPL 30, so the limit is 33.
OK = {"PPL": 20.0, "MAUVE": 0.9, "Rep_2": 0.05}


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    # EMSO: lr 1e-3 lands on the oracle but holdout PPL 40 > 33; lr 3e-4 is the closest eligible one.
    _job(root, "0_emso", "emso", "lr", 1e-4, {"MA": 0.6, "EL_3": 0.3, **OK}, holdout_ppl=31.0)
    _job(root, "1_emso", "emso", "lr", 3e-4, {"MA": 0.3, "EL_3": 0.08, **OK}, holdout_ppl=32.0)
    _job(root, "2_emso", "emso", "lr", 1e-3, {"MA": 0.2, "EL_3": 0.05, **OK}, holdout_ppl=40.0)
    # GA: past the oracle at lr 1e-3 (distance counts both ways), closest at 3e-4.
    _job(root, "3_ga", "ga", "lr", 3e-4, {"MA": 0.25, "EL_3": 0.06, **OK}, holdout_ppl=33.0)
    _job(root, "4_ga", "ga", "lr", 1e-3, {"MA": 0.0, "EL_3": 0.0, **OK}, holdout_ppl=32.0)
    # KL: every setting breaks the constraint: listed, marked as not meeting the rule.
    _job(root, "5_kl", "kl", "lr", 1e-4, {"MA": 0.5, "EL_3": 0.2, **OK}, holdout_ppl=90.0)
    _job(root, "6_kl", "kl", "lr", 3e-4, {"MA": 0.2, "EL_3": 0.05, **OK}, holdout_ppl=900.0)
    # DI: its closest setting is collapsed (explicit record), so the other one is picked.
    _job(root, "7_di", "di", "lr", 1e-3, {"MA": 0.2, "EL_3": 0.05, **OK}, collapse=1.0, holdout_ppl=30.0)
    _job(root, "8_di", "di", "lr", 1e-4, {"MA": 0.7, "EL_3": 0.4, **OK}, collapse=0.0, holdout_ppl=30.0)
    return root


def report(root, *overrides):
    return subprocess.run([sys.executable, "-m", "unlearn.report", str(root), *overrides], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_one_row_per_method_by_the_shared_rule(sweep):
    proc = report(sweep, "select=closest_to_oracle")
    assert proc.returncode == 0, proc.stderr
    selected = pd.read_csv(sweep / "report" / "selected.csv").set_index("method")
    assert sorted(selected.index) == ["di", "emso", "ga", "kl"]
    assert selected.loc["emso", "strength"] == pytest.approx(3e-4) and selected.loc["emso", "selected"]
    assert selected.loc["ga", "strength"] == pytest.approx(3e-4)
    assert selected.loc["di", "strength"] == pytest.approx(1e-4) and selected.loc["di", "selected"]
    assert not selected.loc["kl", "selected"] and selected.loc["kl", "strength"] == pytest.approx(3e-4)
    assert list(selected.n_settings) == [3, 2, 2, 2]
    # Distance: mean of |EL_3 - 0.05| / 0.05 and |MA - 0.2| / 0.2.
    assert selected.loc["emso", "oracle_distance"] == pytest.approx((0.03 / 0.05 + 0.1 / 0.2) / 2)
    assert selected.loc["emso", "constraint_limit"] == pytest.approx(33.0)
    md = (sweep / "report" / "table.md").read_text()
    assert "One setting per method" in md and "PPL_holdout ≤ 1.1× the memorized target's" in md
    assert "no: every setting" in md  # KL


def test_unknown_rule_and_missing_oracle_are_one_clear_line(sweep, tmp_path):
    proc = report(sweep, "select=bogus")
    assert proc.returncode == 2 and "select='bogus' is not a rule" in proc.stderr and "Traceback" not in proc.stderr
    proc = report(sweep, "select=closest_to_oracle", "selection_rules.closest_to_oracle.constraint.column=Nope")
    assert proc.returncode == 2 and "Nope" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("method,level,knob,value", [("ga", 0, "lr", 3e-5), ("emso", 4, "lr", 3e-3), ("pdu", 2, "lr", 3e-4),
                                                     ("ta", 3, "gamma", 5.0), ("cd", 0, "gamma", 0.5)])
def test_fair_compare_gives_every_method_the_same_budget(method, level, knob, value):
    cfg = compose(["experiment=fair_compare", f"method={method}", f"level={level}"])
    apply_strength(cfg)
    assert cfg.method.strength_knob == knob and strength_of(cfg) == pytest.approx(value)
    # One schedule and stopping rule for every trained method, whatever its tuned/ file says (GA's disables it).
    assert (cfg.method.batch_size, cfg.method.max_epochs) == (2, 10)
    assert cfg.method.early_stop.enabled and cfg.method.early_stop.ratio == 1.10
    swept = compose_with_hydra(["experiment=fair_compare"]).hydra.sweeper.params
    assert swept.level == f"range(0,{len(cfg.fair.lr)})" and len(cfg.fair.gamma) == len(cfg.fair.lr)  # 5 settings each


def test_emso_tradeoff_keeps_the_papers_early_stopping_for_every_method():
    for method in ("emso", "di"):
        cfg = compose(["experiment=emso_tradeoff", f"method={method}", "level=0"])
        assert cfg.method.early_stop.enabled and cfg.method.early_stop.ratio == 1.03 and cfg.method.early_stop.min_epochs == 1


def test_rows_whose_target_never_memorized_are_never_picked(sweep):
    """An EMSO setting right on the oracle, within the constraint, but its target never memorized the
    forget set: nothing was erased, so the rule skips it as the ranking does."""
    import json

    from omegaconf import OmegaConf

    from tests.conftest import CONF
    from unlearn.reporting.collect import load_records
    from unlearn.reporting.selection import select_rows
    from unlearn.reporting.table import method_table

    _job(sweep, "9_emso", "emso", "lr", 3e-3, {"MA": 0.2, "EL_3": 0.05, **OK}, holdout_ppl=30.0)
    results = json.loads((sweep / "9_emso" / "results.json").read_text())
    results["memorize"] = {"reached_threshold": False}
    (sweep / "9_emso" / "results.json").write_text(json.dumps(results))
    cfg = OmegaConf.merge(OmegaConf.load(CONF / "report.yaml"), {"select": "closest_to_oracle"})
    rows, _ = method_table(load_records(sweep), cfg)
    selected = select_rows(rows, cfg).set_index("method")
    assert selected.loc["emso", "strength"] == pytest.approx(3e-4) and selected.loc["emso", "n_settings"] == 3
