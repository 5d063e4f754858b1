"""Evaluation passes under 2 processes (gloo, torch.multiprocessing): each rank runs its share of the batches,
and every rank ends with the one-process result, item for item (unlearn/ranks.py shard_map). Sampled decoding
draws one random stream across batches, so rank 0 draws it all and sends it (on_main)."""
import json
import os
import random
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import compose
from unlearn.generation import SamplingConfig, decode
from unlearn.generation.engine import decode_branches
from unlearn.generation.forward import teacher_forced
from unlearn.memsinks.losses import mean_loss
from unlearn.models.tiny import build_tiny_model

PAD, BATCH = 0, 4


def _inputs():
    rng = random.Random(0)
    seqs = [[rng.randrange(1, 64) for _ in range(rng.randrange(6, 20))] for _ in range(18)]  # 5 batches of <= 4
    return seqs, [s[:4] for s in seqs], [(s, 3) for s in range(len(seqs))]


def _passes(model):
    seqs, prompts, branches = _inputs()
    tf = teacher_forced(model, seqs, PAD, BATCH)
    return {"argmax": tf.argmax, "nll": tf.nll, "greedy": decode(model, prompts, 6, PAD, BATCH),
            "branches": sorted(decode_branches(model, seqs, branches, PAD, BATCH, seq_batch_size=4).items()),
            "sampled": decode(model, prompts, 6, PAD, BATCH, sampling=SamplingConfig(), seed=3),
            "memsinks_loss": mean_loss(model, seqs, None, PAD, BATCH)}  # unlearn.train's gap losses


def _model():
    return build_tiny_model(compose(["model=tiny-gpt-neo"]).model, 64, seed=0).eval()


def _rank(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    model, calls = _model(), []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    result = _passes(model)
    (out / f"rank{rank}.json").write_text(json.dumps({"result": result, "rows": sum(calls)}, default=list))
    dist.destroy_process_group()


@pytest.mark.slow
def test_each_rank_computes_a_share_and_all_get_the_one_process_result(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    model, calls = _model(), []
    model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    alone = json.loads(json.dumps(_passes(model), default=list))
    for r in ranks:
        assert r["result"] == alone  # every pass, every item, on both ranks
    # The work is split, not repeated: together the ranks feed the model the rows one process does, plus the
    # sampled decode that rank 0 alone runs; rank 1 feeds some, but well under half.
    assert ranks[0]["rows"] + ranks[1]["rows"] == sum(calls)
    assert 0 < ranks[1]["rows"] < sum(calls) / 2 < ranks[0]["rows"]
