"""Spec §2.11 sanity (e): a few-layer Llama trained with sinks on WikiText paragraphs plus a handful of TOFU
documents repeated ~100 times. Dropping the sinks raises the loss on the repeated documents much more
than dropping as many random general units, while held-out loss barely moves."""
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from unlearn.memsinks.corpus import tofu_documents, wikitext_paragraphs
from unlearn.memsinks.data import training_documents
from unlearn.memsinks.corpus import Corpus, assign_ids
from unlearn.memsinks.hashing import document_id
from unlearn.memsinks.losses import mean_loss
from unlearn.memsinks.module import PackedLM
from unlearn.memsinks.packing import PackedDataset, pack
from unlearn.memsinks.sinks import SinkConfig, attach_sinks, output_projections
from unlearn.models.tiny import build_tiny_model, train_tokenizer
from unlearn.stages.trainer import build_trainer

DATA = Path(os.environ.get("UNLEARN_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not (DATA / "wikitext2_raw").is_dir(), reason="needs the shared data folder")

SPEC = OmegaConf.create({"arch": "llama", "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
                         "max_positions": 256})
TRAIN = OmegaConf.create({"lr": 3e-3, "betas": [0.9, 0.95], "weight_decay": 0.1, "warmup_fraction": 0.05})
P_GEN, P_MEM = 0.5, 0.1


def trained_sink_model(steps=240, n_general=200, n_repeated=4, repetitions=100, seed=0):
    torch.manual_seed(seed)
    general = [p for a in wikitext_paragraphs(DATA) for p in a][:n_general]
    docs = tofu_documents(DATA, 2)
    repeated, heldout = docs[:n_repeated], docs[n_repeated:n_repeated + 8]
    tokenizer = train_tokenizer(general, 512)
    encode = lambda t: tokenizer.encode(t, add_special_tokens=False)[:96]
    corpus = Corpus(general, repeated, assign_ids(repeated), heldout, [], "test")
    model = build_tiny_model(SPEC, len(tokenizer), seed)
    controller = attach_sinks(model, SinkConfig(P_GEN, P_MEM, mode="own"))
    rows = pack(training_documents(corpus, encode, "memsinks", repetitions, 0.0, seed), 64, tokenizer.eos_token_id,
                tokenizer.pad_token_id)
    loader = DataLoader(PackedDataset(rows), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
    trainer = build_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true",
                                              "progress_bar": False}), -1, None)
    trainer.fit_loop.epoch_loop.max_steps = steps
    trainer.fit(PackedLM(model, TRAIN, steps), train_dataloaders=loader)
    model.eval()
    sets = {"repeated": ([encode(t) for t in repeated], corpus.repeated_ids),
            "heldout": ([encode(t) for t in heldout], [document_id(t) for t in heldout])}
    return model, controller, sets, tokenizer.pad_token_id


def drop_random_general(model, controller, k: int, seed: int):
    """Zero k random general units in every block (on top of the sinks' own mode); returns the hook handles."""
    g = torch.Generator().manual_seed(seed)
    handles = []
    for proj in output_projections(model):
        units = torch.randperm(controller.n_general, generator=g)[:k]
        keep = torch.ones(controller.intermediate)
        keep[units] = 0
        handles.append(proj.register_forward_pre_hook(lambda m, a, keep=keep: (a[0] * keep,)))
    return handles


@pytest.mark.slow
def test_dropping_sinks_forgets_the_repeated_set_and_keeps_heldout():
    model, controller, sets, pad = trained_sink_model()
    loss = lambda name, mode: mean_loss(model, *sets[name], pad, 16, mode)
    rep_on, held_on = loss("repeated", "own"), loss("heldout", "own")
    rep_drop, held_drop = loss("repeated", "drop"), loss("heldout", "drop")
    assert held_on - rep_on > 1.0, f"the repeated set was not memorized (repeated {rep_on:.2f} vs held-out {held_on:.2f})"
    # As many general units as the sinks active for one sequence (p_mem of the pool), averaged over 3 draws.
    k = round(P_MEM * controller.n_sink)
    rises = []
    for draw in range(3):
        handles = drop_random_general(model, controller, k, draw)
        rises.append(loss("repeated", "own") - rep_on)
        for h in handles:
            h.remove()
    random_rise = sum(rises) / len(rises)
    drop_rise = rep_drop - rep_on
    print(f"repeated: on {rep_on:.3f} drop {rep_drop:.3f} (+{drop_rise:.3f}), random general units +{random_rise:.3f}; "
          f"held-out: on {held_on:.3f} drop {held_drop:.3f}")
    assert drop_rise > 1.0 and drop_rise > 5 * max(random_rise, 0.01)
    assert abs(held_drop - held_on) < 0.2 * drop_rise
