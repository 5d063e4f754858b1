"""memorize=none: the loaded model is the target (a pretrained model that already recites its forget set).

The tiny fixture's memorized target, saved as a local folder, plays "pretrained GPT-Neo": it is loaded
with model=local, unlearned, evaluated, and reported, with no memorize training and no oracle unless
one is given (oracle.name_or_path). data.min_target_ma keeps only the records it recites.
"""
import json

import pytest

from tests.conftest import CONF, SHARED_DATA, TINY, compose
from unlearn.errors import ConfigError
from unlearn.workflows.run_pipeline import run_pipeline, validate_config

RUN = [o for o in TINY if not o.startswith(("model=", "memorize."))] + [
    "memorize=none", "model=local", "method=ga", "method.max_epochs=1", "method.lr=5e-3", "method.batch_size=4",
    "method.early_stop.enabled=false", "eval.metrics=[{name: ma, label: MA, splits: [forget]}, {name: ppl, label: PPL, splits: [utility]}]"]


def _folder(tiny_setup, cache_dir, role):
    return cache_dir / "memorized" / tiny_setup["card"]["key"] / role


@pytest.mark.slow
def test_memorize_none_runs_end_to_end_without_oracle_and_reports(tiny_setup, cache_dir, tmp_path):
    from omegaconf import OmegaConf

    from unlearn.reporting.write import write_report

    target = _folder(tiny_setup, cache_dir, "target")
    results = run_pipeline(compose(RUN + [f"model.name_or_path={target}", f"paths.cache_dir={cache_dir}"]), tmp_path / "run")
    assert results["memorize"]["memorize"] == "none" and results["memorize"]["oracle"] is False
    roles = {r["model"] for r in results["records"]}
    assert roles == {"target", "unlearned"}  # no oracle, and no original: the loaded model is the target
    ma = {r["model"]: r["value"] for r in results["records"] if r["metric"] == "MA"}
    # The loaded model is the fixture's memorized target, untouched: it recites as the fixture measured.
    assert ma["target"] == pytest.approx(tiny_setup["card"]["forget_ma"], abs=0.02)
    assert ma["unlearned"] < ma["target"]
    assert "epochs" not in results["memorize"]  # no memorize training at all

    report = OmegaConf.load(CONF / "report.yaml")
    written = write_report(tmp_path / "run", report)
    table = (tmp_path / "run" / "report" / "table.md").read_text()
    assert "oracle" not in table and "target" in table and "ga" in table
    assert not (tmp_path / "run" / "report" / "oracle_gap.csv").exists()
    assert any(str(p).endswith("table.csv") for p in written)


@pytest.mark.slow
def test_given_oracle_and_recited_records_filter(tiny_setup, cache_dir, tmp_path):
    """The fixture memorized records 0-7 (forget) and 8-11 (retain); 12-15 (holdout) it never saw. Asking
    for all 16 as the forget set with data.min_target_ma keeps what the target recites and drops the rest."""
    target, oracle = _folder(tiny_setup, cache_dir, "target"), _folder(tiny_setup, cache_dir, "oracle")
    cfg = compose(RUN + [f"model.name_or_path={target}", f"paths.cache_dir={cache_dir}", f"oracle.name_or_path={oracle}",
                         "data.n_forget=16", "data.n_retain=0", "data.n_holdout=0", "data.min_target_ma=0.8"])
    results = run_pipeline(cfg, tmp_path)
    kept = results["forget_filter"]
    never_seen = tiny_setup["encoded"]["holdout"].record_ids
    assert set(never_seen) <= set(kept["dropped"]), kept
    assert len(kept["kept"]) >= 8 and all(kept["target_ma"][i] >= 0.8 for i in kept["kept"])
    assert all(kept["target_ma"][i] < 0.8 for i in kept["dropped"])
    records = {(r["model"], r["metric"]): r for r in results["records"]}
    assert records[("target", "MA")]["n"] == len(kept["kept"])  # metrics ran on the kept records only
    assert records[("target", "MA")]["value"] >= 0.8
    # The given oracle is evaluated: it never trained on the forget records, so it recites them far less.
    assert records[("oracle", "MA")]["value"] < records[("target", "MA")]["value"] - 0.3
    assert json.loads((tmp_path / "results.json").read_text())["forget_filter"]["kept"] == kept["kept"]


def test_oracle_path_needs_memorize_none_and_a_model_folder(tmp_path):
    with pytest.raises(ConfigError, match="memorize=none"):
        validate_config(compose(["model=tiny-gpt-neo", f"oracle.name_or_path={tmp_path}"]))
    with pytest.raises(ConfigError, match="not a saved model folder"):
        validate_config(compose(["model=tiny-gpt-neo", "memorize=none", f"oracle.name_or_path={tmp_path}"]))


@pytest.mark.skipif(not (SHARED_DATA / "paragraph_memorization_gpt_neo_125m").is_dir(), reason="shared data not present")
def test_paragraph_memorization_source():
    import csv

    from unlearn.workflows.run_pipeline import build_splits

    cfg = compose(["data=paragraph_memorization", "data.n_forget=5", "data.n_retain=3", "data.n_holdout=2"])
    splits = build_splits(cfg.data, str(SHARED_DATA))
    assert [r.id for r in splits.forget] == [f"50_50_preds-{i:04d}" for i in range(5)]
    assert [r.id for r in splits.retain] == [f"50_50_preds-{i:04d}" for i in range(5, 8)]  # after the forget rows
    assert [r.id for r in splits.holdout] == ["11_29_preds-0000", "11_29_preds-0001"]
    assert all(len(r.source_ids) == 100 and r.source_prefix_len == 50 for r in splits.forget)
    with open(SHARED_DATA / "paragraph_memorization_gpt_neo_125m" / "mem_strings.csv") as f:
        paragraphs = [row["paragraph"] for row in csv.DictReader(f)]
    assert [r.text for r in splits.forget + splits.retain] == paragraphs[:8]
