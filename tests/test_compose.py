"""Every option of every config group composes with the primary config."""
import pytest

from tests.conftest import CONF, compose

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "tuned", "experiment"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_group_option_composes(group, option):
    cfg = compose([f"{group}={option}"])
    assert group in cfg
    assert cfg[group] is not None


def test_every_tuned_file_names_a_real_data_method_pair():
    data = {f.stem for f in (CONF / "data").glob("*.yaml")}
    methods = {f.stem for f in (CONF / "method").glob("*.yaml")}
    for f in (CONF / "tuned").glob("*.yaml"):
        assert any(f.stem == f"{d}_{m}" for d in data for m in methods), f.name


def test_tuned_defaults_apply_but_command_line_wins():
    tuned = compose(["method=emso"])
    assert tuned.method.lr != 1.0e-5  # synthetic_pii_emso.yaml adjusts the paper lr to 8 records
    assert compose(["method=emso", "method.lr=0.123"]).method.lr == 0.123
    assert compose(["method=emso", "data=extraction_challenge"]).method.lr == 1.0e-5  # paper default


def test_default_is_the_offline_smollm2_emso_demo():
    cfg = compose()
    assert (cfg.model.source, cfg.data.source, cfg.method.name) == ("gguf_package", "synthetic", "emso")
