"""`python -m unlearn.evaluate` and the evaluate stage's result store: records written as they are
computed, skipped metrics recorded with their reason, re-runs resuming instead of recomputing."""
import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO
from tests.test_metric_context import CountingLM, make_contexts
from unlearn.errors import ConfigError
from unlearn.evaluate import path_shortcut
from unlearn.stages.evaluate import evaluate, validate_metrics
from unlearn.stages.result_store import ResultStore

SUITE = OmegaConf.create({
    "name": "t", "batch_size": 8, "tofu": {"limit": 2},
    "metrics": [
        {"name": "ma", "label": "MA", "splits": ["forget"]},
        {"name": "el", "label": "EL_3", "n": 3, "splits": ["forget", "holdout"]},
        {"name": "forget_quality", "label": "FQ", "splits": ["tofu_forget"]},
    ],
})


def test_path_shortcut_turns_a_folder_into_a_local_model(tmp_path):
    run_dir = tmp_path / "2026-01-01_emso-run"
    (run_dir / "model").mkdir(parents=True)
    args = path_shortcut([f"model={run_dir / 'model'}", "eval=tofu", "model=smollm2"])
    assert args == ["model=local", f"model.name_or_path={run_dir / 'model'}", f"model.name={run_dir.name}", "eval=tofu", "model=smollm2"]


def test_bad_metric_parameters_fail_before_anything_runs():
    bad = OmegaConf.create({"metrics": [{"name": "el", "nn": 3, "splits": ["forget"]}]})
    with pytest.raises(ConfigError, match="takes no parameter 'nn'"):
        validate_metrics(bad)


def test_stage_records_skips_writes_as_it_goes_and_resumes(tmp_path):
    model = CountingLM(step=1)
    ctx = make_contexts(model)
    store = ResultStore(tmp_path, {"model_spec": "counting"}, identity_keys=("model_spec",))
    records, per_item = evaluate({"unlearned": ctx}, ["unlearned"], SUITE, store)
    by_key = {(r["split"], r["metric"]): r for r in records}
    assert by_key[("forget", "MA")]["value"] == 1.0
    holdout, fq = by_key[("holdout", "EL_3")], by_key[("tofu_forget", "FQ")]
    assert holdout["value"] is None and "not a record split" in holdout["details"]["skipped"]
    assert fq["value"] is None and "retrain oracle" in fq["details"]["skipped"]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["records"] == json.loads(json.dumps(records)) and on_disk["model_spec"] == "counting"
    assert per_item["unlearned"]["forget"]["MA"]["ids"] == ["a", "b", "c"]
    assert json.loads((tmp_path / "per_item.json").read_text())["unlearned"]["forget"]["EL_3"]["values"] == [1.0] * 3

    calls = model.calls
    again, _ = evaluate({"unlearned": make_contexts(model)}, ["unlearned"], SUITE,
                     ResultStore(tmp_path, {"model_spec": "counting"}, identity_keys=("model_spec",)))
    assert model.calls == calls  # MA and EL were done: nothing recomputed
    assert {(r["split"], r["metric"]) for r in again} == {("holdout", "EL_3"), ("tofu_forget", "FQ")}  # skips retried

    changed = OmegaConf.merge(SUITE, {"metrics": [{"name": "ma", "label": "MA", "positions": "prefix", "splits": ["forget"]}]})
    redo, _ = evaluate({"unlearned": make_contexts(model)}, ["unlearned"], changed, ResultStore(tmp_path, {"model_spec": "counting"}))
    assert [r["metric"] for r in redo] == ["MA"]  # new parameters: recomputed, not reused
    with pytest.raises(ConfigError, match="different model_spec"):
        ResultStore(tmp_path, {"model_spec": "another"}, identity_keys=("model_spec",))
    assert ResultStore(tmp_path, {"model_spec": "another"}, overwrite=True, identity_keys=("model_spec",)).records == []


@pytest.mark.slow
def test_evaluate_cli_on_a_saved_model_writes_results_and_resumes(tiny_setup, cache_dir, tmp_path):
    from unlearn.models.load import save_model

    folder = save_model(tiny_setup["target"], tiny_setup["tokenizer"], tmp_path / "run-x" / "model")
    out = tmp_path / "eval"
    args = [sys.executable, "-m", "unlearn.evaluate", f"model={folder}", f"paths.cache_dir={cache_dir}",
            f"hydra.run.dir={out}", "data.utility.n=4", "data.utility.validation_n=2", "data.utility.max_new_tokens=8",
            "eval.batch_size=8"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    first = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "run-x" and results["eval"] == "default"
    assert results["run"]["world_size"] == 1 and results["run"]["device"]["type"] == "cpu"  # run metadata
    keys = {(r["split"], r["metric"]) for r in results["records"]}
    assert keys == {(s, m) for s in ("forget", "holdout") for m in ("MA", "EM_len", "EL_3")} | {("utility", "PPL"), ("holdout", "PPL")}
    assert all(r["model"] == "run-x" and r["value"] is not None for r in results["records"])
    assert (out / "results.md").is_file() and (out / "per_item.json").is_file() and (out / "generations.json").is_file()

    # An interrupted run: two records never made it to disk. The re-run computes only those.
    results["records"] = results["records"][:-2]
    (out / "results.json").write_text(json.dumps(results))
    second = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed: 6 metric(s)" in second.stdout
    assert len(json.loads((out / "results.json").read_text())["records"]) == 8

    other = subprocess.run([*args[:3], "model=tiny-llama", *args[4:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "different model_spec" in other.stderr and "Traceback" not in other.stderr
