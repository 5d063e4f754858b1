"""Two processes that need the same memorized target at the same time (two jobs of a parallel sweep)
build it once: the second waits for the first's lock, then loads the cached target."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, TINY

BUILD = """
import json, sys
from omegaconf import OmegaConf
from tests.conftest import compose
from unlearn.data.encode import encode_split
from unlearn.models.load import load_model
from unlearn.pipeline import build_splits
from unlearn.stages.memorize import memorize

cfg = compose(json.loads(sys.argv[1]))
splits = build_splits(cfg.data, None)
base, tok = load_model(cfg.model, cfg.paths.cache_dir, corpus=splits.texts(), seed=0)
vocab = base.get_input_embeddings().num_embeddings
encoded = {n: encode_split(splits.by_name(n), tok, vocab, False, cfg.eval.prefix_len) for n in ("forget", "retain", "holdout")}
material = {"model": OmegaConf.to_container(cfg.model), "split_ids": splits.ids(), "seed": 0}
card = memorize(base, tok, encoded, cfg.memorize, cfg.trainer, cfg.paths.cache_dir, material, 0)[2]
print("CARD " + json.dumps({"cached": card["cached"], "key": card["key"]}))
"""


@pytest.mark.slow
def test_concurrent_jobs_build_the_target_once(tmp_path):
    overrides = [o for o in TINY if not o.startswith("memorize.max_epochs")] + [
        "memorize.max_epochs=20", "memorize.oracle=false", f"paths.cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, json.dumps(overrides)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    cards = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        cards.append(json.loads(next(line[5:] for line in out.splitlines() if line.startswith("CARD "))))
    assert sorted(c["cached"] for c in cards) == [False, True]  # one built it, the other waited and loaded it
    assert cards[0]["key"] == cards[1]["key"]
    assert [p.name for p in (tmp_path / "cache" / "memorized").iterdir() if p.is_dir()] == [cards[0]["key"]]
