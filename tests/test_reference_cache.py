"""The fixed models' records (target, oracle) are computed once per memorized target and reused by
later runs, on the tiny memorized GPT-Neo; the unlearned model and changed settings are never reused."""
from omegaconf import OmegaConf

from unlearn.metrics import EvalEnv
from unlearn.stages import reference_cache as reference_cache_module
from unlearn.stages.evaluate import build_contexts, evaluate
from unlearn.stages.reference_cache import ReferenceCache

EVAL = OmegaConf.create({
    "batch_size": 8, "prefix_len": 8,
    "metrics": [{"name": "ma", "label": "MA", "positions": "all", "splits": ["forget", "holdout"]},
                {"name": "el", "label": "EL_2", "n": 2, "preset": "jang", "splits": ["forget"]}],
})


def _forward_counter(model):
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    return calls


def _evaluate(setup, cache, eval_cfg=EVAL):
    models = {"target": setup["target"], "unlearned": setup["base"], "oracle": setup["oracle"]}
    env = EvalEnv(original_role="target")
    same = {role: setup["tokenizer"] for role in models}
    contexts = build_contexts(models, same, {r: setup["encoded"] for r in models}, {r: {} for r in models}, eval_cfg, env)
    return evaluate(contexts, list(models), eval_cfg, reference_cache=cache)[0]


def _by_key(records):
    return {(r["model"], r["split"], r["metric"]): r for r in records}


def test_second_run_reuses_target_and_oracle_records_without_running_them(tiny_setup, tmp_path):
    cache = ReferenceCache(tmp_path / "eval", {"batch_size": 8, "prefix_len": 8, "seed": 0})
    first = _by_key(_evaluate(tiny_setup, cache))
    assert not any("reused_from" in r["details"] for r in first.values())

    target_calls, oracle_calls = _forward_counter(tiny_setup["target"]), _forward_counter(tiny_setup["oracle"])
    unlearned_calls = _forward_counter(tiny_setup["base"])
    second = _by_key(_evaluate(tiny_setup, cache))
    assert target_calls == [] and oracle_calls == []  # neither fixed model ran a single forward pass
    assert len(unlearned_calls) > 0
    for key, record in second.items():
        assert record["value"] == first[key]["value"]
        assert ("reused_from" in record["details"]) == (key[0] != "unlearned")


def test_changed_metric_settings_identity_or_code_recompute(tiny_setup, tmp_path, monkeypatch):
    cache = ReferenceCache(tmp_path / "eval", {"batch_size": 8, "prefix_len": 8, "seed": 0})
    _evaluate(tiny_setup, cache)
    changed = OmegaConf.merge(EVAL, {"metrics": [{"name": "ma", "label": "MA", "positions": "continuation", "splits": ["forget"]}]})
    records = _evaluate(tiny_setup, cache, changed)
    assert not any("reused_from" in r["details"] for r in records)

    other_identity = ReferenceCache(tmp_path / "eval", {"batch_size": 4, "prefix_len": 8, "seed": 0})
    records = _evaluate(tiny_setup, other_identity)
    assert not any("reused_from" in r["details"] for r in records)

    monkeypatch.setattr(reference_cache_module, "metric_code_hash", lambda: "edited-metric-code")
    records = _evaluate(tiny_setup, cache)  # same settings and identity as the first run, other metric code
    assert not any("reused_from" in r["details"] for r in records)
