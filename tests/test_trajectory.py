"""`eval.during` (stages/trajectory.py): the unlearning fit measured while it trains, on the tiny setup.

The points fall at the start, every step and every epoch end; the last one is the final evaluation's value on
the same records; a resumed fit continues the trajectory of the uninterrupted one, without duplicates."""
import json

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose
from unlearn.data.encode import EncodedSplit
from unlearn.errors import ConfigError
from unlearn.metrics import EvalEnv
from unlearn.stages.evaluate import build_contexts, eval_settings, evaluate
from unlearn.stages.trajectory import FILE, trajectory
from unlearn.stages.unlearn import unlearn

LIMIT = 4
DURING = ["eval.during.enabled=true", "eval.during.every_n_steps=1", f"eval.during.limit={LIMIT}"]
METRICS = "eval.during.metrics=[{name: ma, label: MA, splits: [forget]}, {name: ppl, label: PPL, splits: [holdout, utility]}]"
# 8 forget records, batch 4: two optimizer steps per epoch.
GA = ["method=ga", "method.lr=5e-3", "method.batch_size=4", "method.early_stop.enabled=false"]


def _texts(tokenizer):
    lines = ["The river runs past the old mill and into the valley.", "She kept the letters in a box under the stairs."]
    return {"utility": [tokenizer.encode(t, add_special_tokens=False) for t in lines]}


def _fit(s, run_dir, epochs, extra=(), validation=()):
    cfg = compose(TINY + GA + DURING + [f"method.max_epochs={epochs}", *extra])
    env = EvalEnv(seed=0, settings=eval_settings(cfg.eval), original_role="target")
    during = trajectory(cfg.eval, s["tokenizer"], s["encoded"], _texts(s["tokenizer"]), env, run_dir, s["target"])
    measure, during.measured = during.measure, []  # the steps actually measured, in order (the real measure runs)
    during.measure = lambda model, step, epoch: during.measured.append(step) or measure(model, step, epoch)
    model, info = unlearn(s["target"], s["tokenizer"], {"forget": s["encoded"]["forget"]}, list(validation), cfg.method, cfg.trainer,
                          run_dir, False, 0, trajectory=during)
    return cfg, model, info, during


def _final(s, cfg, model):
    """The final evaluation, by evaluate() itself, of `model` on the first LIMIT records: {(split, metric): value}."""
    first = {n: EncodedSplit(e.record_ids[:LIMIT], e.input_ids[:LIMIT], e.prefix_lens[:LIMIT]) for n, e in s["encoded"].items()}
    eval_cfg = OmegaConf.merge(cfg.eval, {"metrics": OmegaConf.to_container(cfg.eval.during.metrics)})
    env = EvalEnv(seed=0, settings=eval_settings(cfg.eval))
    contexts = build_contexts({"unlearned": model}, {"unlearned": s["tokenizer"]}, {"unlearned": first},
                              {"unlearned": _texts(s["tokenizer"])}, eval_cfg, env)
    return {(r["split"], r["metric"]): r["value"] for r in evaluate(contexts, ["unlearned"], eval_cfg)[0]}


def _at(records, step):
    return {(r["split"], r["metric"]): r["value"] for r in records if r["step"] == step}


def _records(run_dir):
    return json.loads((run_dir / FILE).read_text())["records"]


def test_points_at_start_each_step_and_end_and_the_last_is_the_final_evaluation(tiny_setup, tmp_path):
    s = tiny_setup
    cfg, model, info, during = _fit(s, tmp_path, epochs=2, extra=[METRICS])
    records = _records(tmp_path)
    assert during.measured == [0, 1, 2, 3, 4]  # each point measured once: an epoch end on a measured step is not again
    points = sorted({(r["step"], r["epoch"]) for r in records})
    assert points == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]  # start, each step (epoch ends among them), end
    labels = [(e.label, split) for e in cfg.eval.during.metrics for split in e.splits]
    for step in range(5):  # one record per metric and split at each point: none measured twice
        assert sorted((r["metric"], r["split"]) for r in records if r["step"] == step) == sorted(labels)
    assert all(r["model"] == "unlearned" and r["value"] is not None for r in records)
    assert {r["n"] for r in records if r["split"] in ("forget", "holdout")} == {LIMIT}  # the subset: 4 of the 8 forget records
    forget_ma = [r["value"] for r in records if (r["split"], r["metric"]) == ("forget", "MA")]
    assert forget_ma[-1] < forget_ma[0]  # the trajectory follows the forgetting
    assert info["trajectory"]["points"] == 5 and info["trajectory"]["file"] == FILE

    assert _at(records, 4) == _final(s, cfg, model)  # the end point is the final evaluation on the same records

    # A point leaves the model's modes and the random state as it found them: training goes on unchanged.
    model.train()
    state = torch.get_rng_state()
    during.measure(model, 4, 2.0)
    assert all(m.training for m in model.modules()) and torch.equal(state, torch.get_rng_state())


def test_a_resumed_fit_continues_the_trajectory_of_the_uninterrupted_one(tiny_setup, tmp_path):
    s = tiny_setup
    _fit(s, tmp_path / "straight", 2, [METRICS])
    straight = _records(tmp_path / "straight")
    # Interrupted after epoch 1 (its last-epoch checkpoint is at step 2), after it had measured a point of epoch 2
    # that the checkpoint does not cover: a resumed fit drops it and measures that step again.
    _fit(s, tmp_path / "resumed", 1, [METRICS])
    leftover = [{**r, "step": 3, "epoch": 1.5, "value": -1.0} for r in _records(tmp_path / "resumed") if r["step"] == 2]
    path = tmp_path / "resumed" / FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "records": _records(tmp_path / "resumed") + leftover}))
    _, _, info, during = _fit(s, tmp_path / "resumed", 2, [METRICS])
    assert during.measured == [3, 4]  # step 2 (where it resumes) is on disk already; the leftover step 3 measured again
    assert _records(tmp_path / "resumed") == straight  # same steps, epochs and values, each point once
    assert sorted({r["step"] for r in straight}) == list(range(5)) and info["trajectory"]["points"] == 5


def test_an_early_stop_that_puts_back_weights_after_a_point_has_that_step_measured_again(tiny_setup, tmp_path):
    """Early stop checked at epoch ends with restore: the last step's point was measured before the stop put back
    the start's weights at that epoch end; the trajectory ends on the weights the fit returns, not the stale ones."""
    s = tiny_setup
    stop = ["method.lr=3e-2", "method.early_stop.enabled=true", "method.early_stop.ratio=1.0", "method.early_stop.min_epochs=0",
            "method.early_stop.restore=true", METRICS]
    cfg, model, info, during = _fit(s, tmp_path, 3, stop, validation=s["encoded"]["holdout"].input_ids)
    assert during.measured == [0, 1, 2, 2]
    assert (info["early_stop"]["step"], info["early_stop"]["restored_step"]) == (2, 0)  # stopped at epoch 1's end
    records = _records(tmp_path)
    assert sorted({r["step"] for r in records}) == [0, 1, 2] and len(records) == 3 * 3  # step 2 once, re-measured
    assert _at(records, 2) == _final(s, cfg, model) == _at(records, 0)  # the start's weights, put back


@pytest.mark.parametrize("override,message", [
    ("eval.during.every_n_steps=0", "every_n_steps must be a whole number >= 1"),
    ("eval.during.limit=0", "limit must be a whole number >= 1"),
    ("eval.during.metrics=[]", "eval.during.metrics is empty"),
    ("eval.during.metrics=[{name: nope, splits: [forget]}]", "eval.during.metrics: eval metric 'nope' is unknown"),
    ("eval.during.metrics=[{name: ma, splits: [forget], n: 3}]", "takes no parameter 'n'"),
    ("eval.during.metrics=[{name: ma}]", "needs splits"),
])
def test_bad_eval_during_is_one_config_error_before_any_model_loads(override, message):
    from unlearn.workflows.run_pipeline import validate_config

    with pytest.raises(ConfigError, match=message):
        validate_config(compose(["model=tiny-gpt-neo", "eval.during.enabled=true", override]))


@pytest.mark.parametrize("suite", ["default", "emso_table1", "muse", "tofu", "reasoning"])
def test_every_suite_has_eval_during_off_by_default_and_valid(suite):
    from unlearn.stages.trajectory import validate_during

    cfg = compose([f"eval={suite}"])
    assert cfg.eval.during.enabled is False
    validate_during(cfg.eval)


def test_the_pipeline_writes_the_trajectory_and_points_to_it_and_its_end_is_the_final_table(tmp_path, cache_dir):
    """Through run_pipeline: the config reaches the fit, trajectory.json sits in the run dir, results.json points
    at it, and with every record (limit: null) the end point is the final evaluation's record, value for value."""
    from unlearn.workflows.run_pipeline import run_pipeline

    table = "[{name: ma, label: MA, splits: [forget]}, {name: ppl, label: PPL, splits: [holdout, utility]}]"
    cfg = compose(TINY + GA + [f"paths.cache_dir={cache_dir}", "method.max_epochs=1", "eval.models=[unlearned]",
                               f"eval.metrics={table}", "eval.during.enabled=true", "eval.during.limit=null",
                               f"eval.during.metrics={table}"])
    results = run_pipeline(cfg, tmp_path)
    assert results["trajectory"]["points"] == 2 and results["trajectory"]["file"] == FILE  # start and the epoch's end
    records = _records(tmp_path)
    assert _at(records, 2) == {(r["split"], r["metric"]): r["value"] for r in results["records"]}
    assert {r["n"] for r in records if r["split"] == "forget"} == {8}


def test_eval_during_is_refused_under_fsdp_like_the_early_stop():
    from unlearn.methods import METHODS
    from unlearn.stages.trainer import validate_strategy

    fsdp = ["method=ga", "trainer=fsdp", "method.early_stop.enabled=false", "memorize=none"]
    with pytest.raises(ConfigError, match="eval.during measures the bare model between steps"):
        validate_strategy(compose([*fsdp, "eval.during.enabled=true"]), METHODS["ga"])
    validate_strategy(compose(fsdp), METHODS["ga"])  # off: no objection


def test_an_unfinished_run_hands_its_trajectory_to_the_run_that_continues_it(tmp_path):
    """The same command again (stages/resume.py) moves trajectory.json into the new run dir with the checkpoint,
    where the resumed fit reads it (the test above)."""
    from unlearn.stages import resume

    cfg = compose(TINY + DURING + [f"paths.cache_dir={tmp_path}", f"paths.output_dir={tmp_path / 'out'}"])
    first = resume.claim(cfg, tmp_path / "first")
    (first.run_dir / FILE).write_text(json.dumps({"records": [{"step": 0}]}))
    first.release()  # killed before results.json: unfinished
    again = resume.claim(cfg, tmp_path / "again")
    again.release()
    assert again.resumed_from is not None and json.loads((tmp_path / "again" / FILE).read_text()) == {"records": [{"step": 0}]}
