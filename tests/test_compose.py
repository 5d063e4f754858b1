"""Every option of every config group composes with the primary config."""
import pytest

from tests.conftest import CONF, compose

# attack/ files are listed by name in eval.attacks, not selected as a group: tests/test_attacks.py checks each.
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "tuned", "experiment", "protocol", "attack"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
# Groups of `python -m unlearn.train` (conf/train.yaml); every other group belongs to conf/run.yaml.
PRIMARY = {"paradigm": "train", "corpus": "train"}


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_group_option_composes(group, option):
    cfg = compose([f"{group}={option}"], config_name=PRIMARY.get(group, "run"))
    assert group in cfg
    assert cfg[group] is not None


@pytest.mark.parametrize("suite", sorted(f.stem for f in (CONF / "eval").glob("*.yaml")))
def test_every_eval_suite_takes_the_shared_eval_keys(suite):
    """eval.attacks (and the other pipeline keys) work with every suite: eval=tofu once refused
    `eval.attacks=[...]` because only eval/default declared it."""
    cfg = compose([f"eval={suite}", "eval.attacks=[int4]", "eval.reuse_reference=false", "eval.precision=bf16",
                   "eval.decode_cache=dynamic"])
    assert list(cfg.eval.attacks) == ["int4"] and cfg.eval.name == suite


def test_every_tuned_file_names_a_real_data_method_pair():
    data = {f.stem for f in (CONF / "data").glob("*.yaml")}
    methods = {f.stem for f in (CONF / "method").glob("*.yaml")}
    for f in (CONF / "tuned").glob("*.yaml"):
        assert any(f.stem == f"{d}_{m}" for d in data for m in methods), f.name


def test_every_protocol_file_names_a_real_size_data_pair():
    """conf/protocol/<size>_<data>.yaml is picked by size=<size> with data=<data>: a typo would never load."""
    data = {f.stem for f in (CONF / "data").glob("*.yaml")}
    sizes = {f.stem for f in (CONF / "size").glob("*.yaml")}
    for f in (CONF / "protocol").glob("*.yaml"):
        assert any(f.stem == f"{s}_{d}" for s in sizes for d in data), f.name


def test_tuned_defaults_apply_but_command_line_wins():
    tuned = compose(["method=emso"])
    assert tuned.method.lr != 1.0e-5  # synthetic_pii_emso.yaml adjusts the paper lr to 8 records
    assert compose(["method=emso", "method.lr=0.123"]).method.lr == 0.123
    assert compose(["method=emso", "data=extraction_challenge"]).method.lr == 1.0e-5  # paper default


def test_default_is_the_offline_smollm2_emso_demo():
    cfg = compose()
    assert (cfg.model.source, cfg.data.source, cfg.method.name) == ("gguf_package", "synthetic", "emso")
