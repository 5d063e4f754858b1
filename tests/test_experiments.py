"""Experiment configs and launcher configs compose: every experiment, EMSO Table 1 at every model size
with the paper's batch/accumulation, the trade-off grid's per-method strengths, and the SLURM launcher."""
import importlib.util

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from tests.conftest import CONF, compose
from unlearn.sweeps.jobs import apply_strength, skip_reason

EXPERIMENTS = sorted(f.stem for f in (CONF / "experiment").glob("*.yaml"))


def compose_with_hydra(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config_name="run", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_a_sweep(name):
    cfg = compose_with_hydra([f"experiment={name}"])
    assert cfg.hydra.sweeper.params, f"{name} sets no hydra.sweeper.params"
    apply_strength(cfg)  # every interpolation resolves
    assert cfg.method.name and cfg.model.name


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_passes_the_config_checks_of_its_run(name):
    """What a job checks before loading anything: its metrics, their splits and its attacks. A split name
    the checks did not know once failed every muse_news job at once (KnowMem's knowmem_forget)."""
    from unlearn.attacks.battery import validate_attacks
    from unlearn.stages.evaluate import validate_metrics
    from unlearn.workflows.input_checks import validate_eval_splits

    cfg = compose([f"experiment={name}"])
    if "metrics" not in cfg.get("eval", {}):
        pytest.skip(f"{name} has no eval metrics (a python -m unlearn.train experiment)")
    validate_eval_splits(cfg.eval)
    validate_metrics(cfg.eval)
    validate_attacks(cfg)


@pytest.mark.parametrize("model,batch,accum", [("gpt-neo-125m", 64, 1), ("gpt-neo-1.3b", 16, 4), ("gpt-neo-2.7b", 8, 8)])
def test_emso_table1_batch_by_model_size(model, batch, accum):
    for method in ("emso", "ga", "di"):
        cfg = compose(["experiment=emso_table1", f"model={model}", f"method={method}"])
        assert (cfg.method.batch_size, cfg.trainer.accumulate_grad_batches) == (batch, accum)
        assert cfg.method.early_stop.enabled and cfg.method.early_stop.ratio == 1.03
        assert cfg.data.name == "extraction_challenge"


@pytest.mark.parametrize("method,level,expected", [("emso", 6, 7), ("di", 3, 10.0), ("ta", 0, 0.04), ("cd", 2, 0.7),
                                                   ("di", 4, None)])
def test_emso_tradeoff_strength_per_method_and_level(method, level, expected):
    cfg = compose(["experiment=emso_tradeoff", f"method={method}", f"level={level}"])
    apply_strength(cfg)
    if expected is None:
        assert skip_reason(cfg) and "past" in skip_reason(cfg)
    else:
        assert cfg.method[cfg.method.strength_knob] == expected and skip_reason(cfg) is None


def test_tofu_splits_follow_the_forget_split():
    cfg = compose(["experiment=closer_look_tofu", "method=me_gd", "data.forget_split=forget10"])
    assert (cfg.data.retain_split, cfg.data.holdout_split, cfg.data.n_forget) == ("retain90", "holdout10", 400)


def test_every_method_names_a_strength_knob_that_exists():
    for f in (CONF / "method").glob("*.yaml"):
        cfg = compose([f"method={f.stem}", "strength=2"])
        apply_strength(cfg)
        assert cfg.method[cfg.method.strength_knob] == 2


def test_joblib_launcher_composes():
    cfg = compose_with_hydra(["hydra/launcher=parallel"])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                    reason="hydra-submitit-launcher is not installed (pip install hydra-submitit-launcher)")
def test_slurm_launcher_composes():
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "experiment=emso_table1"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.partition, launcher.timeout_min) == (1, "gpu", 240)


# Each paper experiment computes its paper's metrics (issue #10 item 3).
PAPER_SUITES = {"emso_table1": "emso_table1", "emso_tradeoff": "emso_table1", "closer_look_tofu": "tofu", "pdu_tofu": "tofu"}


@pytest.mark.parametrize("name,suite", sorted(PAPER_SUITES.items()))
def test_paper_experiments_compose_their_papers_suite(name, suite):
    cfg = compose([f"experiment={name}"])
    assert cfg.eval.name == suite
    metrics = {m.label or m.name for m in cfg.eval.metrics}
    assert metrics >= ({"EL_3", "MA", "SS", "PPL", "Rep_2", "Div_3", "Coh", "MAUVE"} if suite == "emso_table1"
                       else {"ROUGE", "Prob", "TR", "FQ", "MU"})


@pytest.mark.parametrize("name", ["emso_table1", "emso_tradeoff"])
def test_emso_experiments_take_pretrained_gpt_neo_as_the_target(name):
    """GPT-Neo memorized the extraction challenge in pre-training (spec §4.1): no memorize fine-tuning."""
    cfg = compose([f"experiment={name}", "model=gpt-neo-1.3b"])
    assert cfg.memorize.name == "none" and cfg.data.name == "extraction_challenge"


def test_paper_sizes_compose():
    emso = compose(["experiment=emso_table1", "size=paper"])
    assert (emso.data.n_forget, emso.data.n_retain, emso.data.retain_from.hf_name) == (15000, 10000, "vblagoje/cc_news")
    assert (emso.eval.wikitext.n, emso.eval.wikitext.source) == (5000, "hub")
    metric = {m.label: m for m in emso.eval.metrics}
    assert metric["PPL"].scorer == emso.eval.collapse.scorer == "EleutherAI/gpt-j-6b"
    assert metric["Coh"].encoder == "simcse" and metric["Coh"].fallback is None
    assert metric["MAUVE"].featurizer == emso.eval.collapse.featurizer == "lm:gpt2-large"
    di = compose_with_hydra(["experiment=emso_table1", "size=paper_di"])
    assert di.data.n_forget == 32 and di.data.shuffle and di.hydra.sweeper.params.seed == "0,1,2,3,4"
    for split, retain, n in (("forget01", "retain99", 3960), ("forget05", "retain95", 3800), ("forget10", "retain90", 3600)):
        tofu = compose(["experiment=closer_look_tofu", "size=paper", f"data.forget_split={split}"])
        assert (tofu.data.retain_split, tofu.data.n_retain, tofu.eval.tofu.limit) == (retain, n, None)
    demo = compose(["experiment=emso_table1"])  # the default size stays small
    assert demo.data.n_forget == 32 and demo.eval.wikitext.n == 16 and demo.get("requires") is None


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """No cached hub copies (whatever this machine holds), and the hub offline."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("overrides,hub_id", [
    (["experiment=emso_table1", "size=paper"], "EleutherAI/gpt-j-6b"),
    (["experiment=emso_table1", "size=paper"], "vblagoje/cc_news"),
    (["experiment=emso_table1", "size=paper_di"], "Salesforce/wikitext"),
    (["experiment=closer_look_tofu", "size=paper"], "sileod/deberta-v3-base-tasksource-nli"),
])
def test_paper_size_offline_fails_before_any_model_loads(empty_hub_cache, tmp_path, monkeypatch, overrides, hub_id):
    import unlearn.workflows.run_pipeline as pipeline
    from unlearn.errors import ConfigError

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the paper-size check")

    monkeypatch.setattr(pipeline, "load_model", no_model)
    cfg = compose(overrides + ["model=tiny-gpt-neo", "trainer=default", "logger=csv", f"paths.cache_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=hub_id) as err:
        pipeline.run_pipeline(cfg, tmp_path / "run")
    assert "\n" not in str(err.value) and "offline" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_paper_size_passes_online_or_cached(empty_hub_cache, monkeypatch):
    from unlearn.stages import requirements

    cfg = compose(["experiment=emso_table1", "size=paper"])
    monkeypatch.setattr(requirements, "hub_offline", lambda: False)  # online: the loaders download
    requirements.check_requirements(cfg)
    monkeypatch.setattr(requirements, "hub_offline", lambda: True)
    monkeypatch.setattr(requirements, "model_cached", lambda repo: True)
    monkeypatch.setattr(requirements, "dataset_cached", lambda repo: True)
    requirements.check_requirements(cfg)  # offline with every copy cached


def test_paper_size_without_sizes_for_the_data_fails():
    from unlearn.errors import ConfigError
    from unlearn.stages.requirements import check_requirements

    with pytest.raises(ConfigError, match="data=extraction_challenge, tofu"):
        check_requirements(compose(["size=paper", "data=synthetic_pii"]))
