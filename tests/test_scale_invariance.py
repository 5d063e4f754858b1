"""One result whatever the number of processes (issue #21): the same global batch of 4 as one process with
batch 4, as two CPU processes (gloo DDP) with 2 each, and as one process with 2 x accumulation 2 gives the
same trained weights, for GA, GD, KL, PDU, EMSO and the memorize stage's fine-tune (target and oracle).

The records have unequal token lengths (43-53 tokens), so this pins down every part: which records each step
trains on (Lightning's default sampler wrapper reshuffles, so two processes trained on other batches than one),
the retain batches paired with them, token means over the whole optimizer step rather than per micro-batch
(methods/token_window.py), PDU's dual step on the step's retain loss, EMSO's selection batch and its
once-per-optimizer-step reselection."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

SETUPS = {
    "one_process": ["trainer=default", "method.batch_size=4"],
    "two_processes": ["trainer=ddp_cpu", "method.batch_size=2"],
    "accumulation": ["trainer=default", "method.batch_size=2", "trainer.accumulate_grad_batches=2"],
}
METHODS = {
    "ga": [],
    "gd": [],
    "kl": [],
    "pdu": ["method.eps_mode=absolute", "method.eps=5.0", "method.dual_init=1.0", "method.dual_step_size=1.0",
            "method.dual_warmup_epochs=1",
            # λ steps once per optimizer step; the default (the PDU code's per-micro-batch step) depends on accumulation
            "method.dual_update_per=optimizer_step"],
    "emso": ["method.lr=1e-2", "method.k=2"],
    "finetune": [],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The worker's output folder: <tag>_rank<r>.json per rank (steps, items, losses, λ, EMSO selections) and
    <tag>_weights.pt (rank 0's trained weights), tag = <method>_<setup>; init_weights.pt."""
    out = tmp_path_factory.mktemp("invariance")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    spec = lambda setup, m: f"{m}:" + ",".join([*SETUPS[setup], *METHODS[m], "+save_weights=1", f"+tag={m}_{setup}"])  # noqa: E731
    for setups in (["one_process", "accumulation"], ["two_processes"]):  # one launch per process count
        specs = [spec(setup, m) for setup in setups for m in METHODS]
        proc = subprocess.run([sys.executable, str(REPO / "tests" / "ddp_worker.py"), str(out), *specs],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def weights(runs):
    return lambda name: torch.load(runs / f"{name}_weights.pt")


@pytest.fixture(scope="module")
def ranks(runs):
    return lambda tag, world=2: [json.loads((runs / f"{tag}_rank{r}.json").read_text()) for r in range(world)]


def _change(a: dict, b: dict) -> float:
    """‖a − b‖ over every weight. A norm, not the largest entry: AdamW's step is about lr on any entry whose
    gradient is above eps, so an entry whose gradient is float noise can move by lr either way."""
    return sum(float((a[k].double() - b[k].double()).pow(2).sum()) for k in a) ** 0.5


@pytest.mark.slow
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("setup", ["two_processes", "accumulation"])
def test_the_same_global_batch_trains_the_same_weights_on_any_process_count(weights, method, setup):
    init, one, other = weights("init"), weights(f"{method}_one_process"), weights(f"{method}_{setup}")
    update = _change(one, init)
    assert update > 1e-2  # the fit moved the weights: there is something to compare
    # float sums in another order (all-reduce, accumulation) stay far below the update; other batches do not
    assert _change(other, one) < 1e-3 * update, (method, setup, _change(other, one), update)


# --- what the two ranks do (tests/ddp_worker.py records it per step) -----------------------------------------
FORGET, EPOCHS = 8, 3  # the worker's forget set and epochs; each rank has batch 2 in "two_processes"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gd", "pdu"])
def test_each_rank_draws_different_retain_items_and_the_forget_set_drives_the_epoch(ranks, method):
    both = ranks(f"{method}_two_processes")
    assert [r["world_size"] for r in both] == [2, 2]
    for r in both:
        assert len(r["steps"]) == EPOCHS * math.ceil(FORGET / 2 / 2)  # a retain set 4x the forget set does not lengthen it
    a, b = ([s["retain"] for s in r["steps"]] for r in both)
    assert sum(x != y for x, y in zip(a, b)) >= len(a) - 1  # different retain batches step by step
    for epoch in range(EPOCHS):  # and the forget set is split between the ranks
        forget = [{i for s in r["steps"] if s["epoch"] == epoch for i in s["forget"]} for r in both]
        assert not forget[0] & forget[1] and forget[0] | forget[1] == set(range(FORGET))


@pytest.mark.slow
def test_pdu_lambda_is_identical_on_both_ranks_and_follows_the_rank_averaged_retain_loss(ranks):
    r0, r1 = (r["steps"] for r in ranks("pdu_two_processes"))
    assert any(abs(x["retain_nll"] - y["retain_nll"]) > 1e-4 for x, y in zip(r0, r1))  # the ranks disagree on L_rtn
    assert [s["lambda"] for s in r0] == [s["lambda"] for s in r1]
    # λ recorded at a step is the value before that step's dual update; after warm-up (epoch 0) each update adds
    # η·(mean over ranks of the step's retain loss − ε) (each rank's loss is its share of the step's token mean).
    for (prev0, prev1), (nxt, _) in zip(zip(r0, r1), zip(r0[1:], r1[1:])):
        if prev0["epoch"] == 0:
            assert nxt["lambda"] == prev0["lambda"] == 1.0
            continue
        expected = max(0.0, prev0["lambda"] + 1.0 * ((prev0["retain_nll"] + prev1["retain_nll"]) / 2 - 5.0))
        assert math.isclose(nxt["lambda"], expected, rel_tol=1e-5)
    assert r0[-1]["lambda"] != 1.0


@pytest.mark.slow
def test_emso_selects_and_masks_the_same_on_both_ranks_and_on_one_process(ranks):
    both, (single,) = ranks("emso_two_processes"), ranks("emso_one_process", world=1)
    blocks = [[e["blocks"] for e in r["epochs"]] for r in both]
    assert blocks[0] == blocks[1] == [e["blocks"] for e in single["epochs"]]  # same selection every epoch
    for step, (a, b, one) in enumerate(zip(both[0]["steps"], both[1]["steps"], single["steps"])):
        # each rank divides its token sum by the step's token count / 2 (methods/token_window.py): the ranks' mean,
        # which DDP's gradient average takes, is the one-process batch mean
        assert math.isclose((a["loss"] + b["loss"]) / 2, one["loss"], rel_tol=1e-5 if step == 0 else 1e-3), step
    for r in (*both, single):
        for e in r["epochs"]:  # unselected weights bit-identical, per epoch, on every rank
            assert e["outside"] == 0 and e["inside"] > 0, e
    assert both[0]["weights_sum"] == both[1]["weights_sum"]  # the ranks stay in sync


def test_one_process_batches_are_what_a_shuffling_loader_draws():
    """The sharding sampler changes nothing on one process: the same batches, the same generator and global RNG
    state after each epoch as `DataLoader(shuffle=True, generator=g)` under a Lightning fit (which draws a base
    seed and, when the last batch is partial, a second unused permutation per epoch)."""
    import logging

    import pytorch_lightning as pl
    from pytorch_lightning.utilities import CombinedLoader
    from torch.utils.data import DataLoader

    from unlearn.methods.sampling import EpochPermutation

    def fit(sharding_sampler: bool, batch: int):
        generator, seen = torch.Generator().manual_seed(0), []
        torch.manual_seed(1)

        class Module(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))

            def training_step(self, batch, index):
                seen.append(batch["train"].tolist())
                return (self.w ** 2).sum()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def train_dataloader(self):
                how = {"sampler": EpochPermutation(8, generator, batch)} if sharding_sampler else {"shuffle": True}
                return CombinedLoader({"train": DataLoader(list(range(8)), batch_size=batch, generator=generator, **how)},
                                      mode="max_size_cycle")

        logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
        pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   accelerator="cpu").fit(Module())
        return seen, generator.get_state(), torch.get_rng_state()

    for batch in (3, 4):  # a partial last batch (the sampler is read past its end: one more draw) and none
        (batches, state, rng), (batches_new, state_new, rng_new) = fit(False, batch), fit(True, batch)
        assert batches_new == batches and torch.equal(state_new, state) and torch.equal(rng_new, rng), batch
