"""Two processes that need the same memorized target at the same time (two jobs of a parallel sweep)
build it once: the second waits for the first's lock, then loads the cached target."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST_SWEEP, REPO

BUILD = """
import json, sys
from tests.conftest import compose, memorize_tiny

card = memorize_tiny(compose(json.loads(sys.argv[1])))["card"]
print("CARD " + json.dumps({"cached": card["cached"], "key": card["key"]}))
"""


@pytest.mark.slow
def test_concurrent_jobs_build_the_target_once(tmp_path):
    overrides = FAST_SWEEP + [f"paths.cache_dir={tmp_path / 'cache'}"]
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
