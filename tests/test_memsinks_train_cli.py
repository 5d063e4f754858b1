"""`python -m unlearn.train`: config composition, and one clear line + exit 2 + no run directory on a bad
p_gen / p_mem or a corpus too small for R repetitions."""
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA, compose
from unlearn.errors import ConfigError
from unlearn.memsinks.pipeline import validate


@pytest.mark.parametrize("overrides,message", [
    (["paradigm.sinks.p_gen=0"], "p_gen=0"),
    (["paradigm.sinks.p_mem=0"], "p_mem=0"),
    (["paradigm.sinks.p_gen=0.95", "paradigm.sinks.p_mem=0.1"], "p_gen + sinks.p_mem = 1.05 > 1"),
    (["id_noise=1.0"], "id_noise"),
    (["paradigm=posthoc", "paradigm.methods=[emso,nope]"], "nope"),
])
def test_bad_settings_fail_before_anything_loads(overrides, message):
    cfg = compose(overrides, config_name="train")
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        validate(cfg)


def test_experiment_composes():
    cfg = compose(["experiment=memsinks_compare"], config_name="train")
    assert cfg.paradigm.name == "memsinks" and cfg.model.arch == "llama"


def _run(tmp_path, *overrides):
    env = {**os.environ, "UNLEARN_DATA_DIR": str(SHARED_DATA), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "unlearn.train", f"paths.output_dir={tmp_path}", f"paths.cache_dir={tmp_path}/c",
                           *overrides], cwd=REPO, env=env, capture_output=True, text=True)


def test_cli_bad_fractions_one_line_no_run_dir(tmp_path):
    out = _run(tmp_path, "paradigm.sinks.p_gen=0.95", "paradigm.sinks.p_mem=0.1")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == ("error: sinks.p_gen + sinks.p_mem = 1.05 > 1; lower one so general and "
                                                   "active sink units fit in the MLP")
    assert not [p for p in (tmp_path / "train").rglob("*") if p.is_file()] if (tmp_path / "train").exists() else True


@pytest.mark.skipif(not (SHARED_DATA / "wikitext2_raw").is_dir(), reason="needs the shared data folder")
def test_cli_corpus_too_small_for_r(tmp_path):
    out = _run(tmp_path, "corpus.repetitions=5000")
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the general corpus is too small for R=5000 repetitions"), last
    assert not [p for p in (tmp_path / "train").rglob("*") if p.is_file()] if (tmp_path / "train").exists() else True
