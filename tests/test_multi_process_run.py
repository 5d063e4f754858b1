"""`python -m unlearn.run` and `python -m unlearn.evaluate` on 2 CPU processes (trainer=ddp_cpu, gloo), issue #21.

Bugs this catches: every rank running the post-fit path (both saving the model into one folder, both writing
results.json and printing the table, both building the cached target), and evaluation done twice instead of
shared: each rank evaluates a share of the batches and rank 0 gathers, so the records equal a one-process
evaluation of the same weights exactly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_SWEEP, REPO, SHARED_DATA

TABLE = "| split | metric |"


def _cli(module, args, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "UNLEARN_DATA_DIR": str(SHARED_DATA)}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp_run")
    proc = _cli("unlearn.run", [*FAST_SWEEP, "trainer=ddp_cpu", "threads=1", "method=ga", "method.batch_size=2", "method.max_epochs=2",
                                "method.early_stop.enabled=false", "save_model=true", "eval.during.enabled=true",
                                "eval.during.every_n_steps=1", "eval.during.limit=4", f"paths.output_dir={tmp / 'out'}",
                                f"paths.cache_dir={tmp / 'cache'}"], tmp)
    run_dir = Path(proc.stdout.strip().splitlines()[-1].split("results: ")[1]).parent
    return tmp, proc, run_dir


@pytest.mark.slow
def test_rank_zero_alone_writes_prints_and_builds_the_cache(two_process_run):
    tmp, proc, run_dir = two_process_run
    assert proc.stdout.count(TABLE) == 1  # one table, not one per rank
    assert proc.stdout.count("[unlearn] memorize:") == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["unlearn"]["world_size"] == 2 and results["status"] == "complete"
    assert (run_dir / "model" / "config.json").is_file()  # saved once (two ranks saving collide: "Directory not empty")
    assert len(list((tmp / "cache" / "memorized").glob("*/card.json"))) == 1
    assert not list(run_dir.glob("evaluation-in-progress"))  # the store was filled and removed by one process
    # eval.during: every rank measured the same points (their passes are collective), rank 0 wrote them once each
    trajectory = json.loads((run_dir / "trajectory.json").read_text())["records"]
    steps = sorted({r["step"] for r in trajectory})
    assert steps == list(range(results["unlearn"]["steps"] + 1))
    assert len(trajectory) == len(steps) * len({(r["split"], r["metric"]) for r in trajectory})


@pytest.mark.slow
def test_two_processes_evaluate_a_share_each_and_equal_one_process_exactly(two_process_run, tmp_path):
    _, _, run_dir = two_process_run
    outputs = {}
    for trainer in ("default", "ddp_cpu"):
        out = tmp_path / trainer
        proc = _cli("unlearn.evaluate", [f"model={run_dir / 'model'}", f"trainer={trainer}", "threads=1", "eval.batch_size=2",
                                         "data.utility.n=4", "data.utility.validation_n=4", "data.utility.max_new_tokens=16",
                                         f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={out}"], tmp_path)
        assert proc.stdout.count(TABLE) == 1
        outputs[trainer] = (json.loads((out / "results.json").read_text()), json.loads((out / "per_item.json").read_text()))
    (one, one_items), (two, two_items) = outputs["default"], outputs["ddp_cpu"]
    values = lambda res: {(r["split"], r["metric"]): r["value"] for r in res["records"]}  # noqa: E731
    assert values(one) and all(v is not None for v in values(one).values())
    assert values(two) == values(one)
    assert two_items == one_items  # item by item, not just the means


@pytest.mark.slow
def test_memsinks_training_on_two_processes_writes_once_and_counts_every_token(tmp_path):
    from tests.test_memsinks_train_cli import TINY_RUN

    args = [o for o in TINY_RUN if not o.startswith("trainer.")] + ["trainer=ddp_cpu", "trainer.progress_bar=false",
                                                                    "trainer.accumulate_grad_batches=2", "threads=1"]
    proc = _cli("unlearn.train", [*args, f"paths.output_dir={tmp_path / 'out'}", f"paths.cache_dir={tmp_path / 'cache'}",
                                  f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.stdout.count("## memsinks") == 1  # one table, not one per rank
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    for info in (results["train"], results["standard"]):  # 2 steps x 2 accumulated batches x 2 processes of 2 x 32 tokens
        assert info["world_size"] == 2 and info["tokens_trained"] == 2 * 2 * 2 * 2 * 32
    assert (tmp_path / "run" / "model" / "config.json").is_file()
    assert len(list((tmp_path / "cache" / "memsinks").glob("*/standard/card.json"))) == 1
