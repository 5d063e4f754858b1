"""MemSinks mechanics (spec §2.11 sanity (a)-(d), §6 item 6): the hash mask, the three modes, gradients,
and save/reload of a sink model."""
import copy
import subprocess
import sys

import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM, LlamaConfig, LlamaForCausalLM

from unlearn.errors import ConfigError
from unlearn.memsinks.hashing import mask_reference, sink_mask
from unlearn.memsinks.sinks import SinkConfig, attach_sinks, output_projections

P_GEN, P_MEM = 0.5, 0.25


def llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, bos_token_id=0, eos_token_id=0)).eval()


def gpt_neo():
    torch.manual_seed(0)
    return GPTNeoForCausalLM(GPTNeoConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                          attention_types=[[["global", "local"], 1]], max_position_embeddings=32, window_size=32,
                                          bos_token_id=0, eos_token_id=0, embed_dropout=0.0, attention_dropout=0.0,
                                          resid_dropout=0.0)).eval()


MODELS = {"llama": llama, "gpt_neo": gpt_neo}


def test_mask_is_the_pure_function_of_id_and_unit():
    """(a) the tensor path equals the plain-integer reference, and a second process computes the same mask."""
    ids = torch.tensor([[1, 1, 7, 123456789], [2**31 - 1, 5, 5, 9]])
    mask = sink_mask(ids, 64, 0.3, seed=3)
    for b in range(2):
        for t in range(4):
            assert mask[b, t].tolist() == mask_reference(int(ids[b, t]), 64, 0.3, seed=3)
    assert torch.equal(mask, sink_mask(ids, 64, 0.3, seed=3))
    code = ("import torch; from unlearn.memsinks.hashing import sink_mask; "
            "print(''.join('1' if v else '0' for v in sink_mask(torch.tensor([123456789]), 64, 0.3, seed=3)[0].tolist()))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == "".join("1" if v else "0" for v in mask[0, 3].tolist())
    assert not torch.equal(mask, sink_mask(ids, 64, 0.3, seed=4))  # the seed matters


def test_masks_differ_between_ids_and_hit_p_mem():
    """(b) active fraction ~ p_mem; two ids almost never share a mask; id 0 turns every sink on."""
    ids = torch.arange(1, 2001)
    mask = sink_mask(ids, 256, 0.1)
    assert abs(mask.float().mean().item() - 0.1) < 0.005
    per_id = mask.float().mean(1)
    assert per_id.std() < 0.03  # every id gets about p_mem of the pool, none all or nothing
    distinct = {tuple(row.tolist()) for row in mask}
    assert len(distinct) == 2000
    overlap = (mask[:-1] & mask[1:]).float().sum(1).mean() / mask[:-1].float().sum(1).mean()
    assert overlap < 0.2  # consecutive ids are independent (overlap ~ p_mem), not shifted copies
    assert sink_mask(torch.tensor([0]), 16, 0.1).all()


@pytest.mark.parametrize("arch", MODELS)
def test_drop_equals_zeroed_sink_weights(arch):
    """(c) `drop` = the model whose sink rows of W_down are zeroed, general units rescaled by (p_gen+p_mem)/p_gen."""
    plain = MODELS[arch]()
    sink = copy.deepcopy(plain)
    attach_sinks(sink, SinkConfig(P_GEN, P_MEM, mode="drop"))
    g = int(32 * P_GEN)
    with torch.no_grad():
        for proj in output_projections(plain):
            proj.weight[:, g:] = 0
            proj.weight[:, :g] *= (P_GEN + P_MEM) / P_GEN
    x = torch.randint(1, 50, (2, 9))
    assert torch.allclose(sink(x).logits, plain(x).logits, atol=1e-5)
    with sink.sink_controller.using("all"):
        assert not torch.allclose(sink(x).logits, plain(x).logits, atol=1e-3)


@pytest.mark.parametrize("arch", MODELS)
def test_all_mode_scales_sinks_by_p_mem(arch):
    plain = MODELS[arch]()
    sink = copy.deepcopy(plain)
    attach_sinks(sink, SinkConfig(P_GEN, P_MEM, mode="all"))
    with torch.no_grad():
        for proj in output_projections(plain):
            proj.weight[:, int(32 * P_GEN):] *= P_MEM
    x = torch.randint(1, 50, (2, 9))
    assert torch.allclose(sink(x).logits, plain(x).logits, atol=1e-5)


@pytest.mark.parametrize("arch", MODELS)
def test_inactive_sinks_get_zero_gradient(arch):
    """(d) one sequence id: its inactive sink units' weights get exactly zero gradient, its active sinks and
    every general unit get gradient."""
    model = MODELS[arch]().train()
    controller = attach_sinks(model, SinkConfig(P_GEN, P_MEM, mode="own"))
    x = torch.randint(1, 50, (1, 12))
    seq = torch.full_like(x, 4242)
    with controller.sequence_ids(seq):
        model(input_ids=x, labels=x).loss.backward()
    active = torch.tensor(mask_reference(4242, controller.n_sink, P_MEM))
    assert active.any() and not active.all()
    g = controller.n_general
    for proj in output_projections(model):
        col = proj.weight.grad.abs().sum(0)  # one entry per hidden unit
        assert (col[:g] > 0).all()
        assert (col[g:][active] > 0).all()
        assert (col[g:][~active] == 0).all()
        up = (proj is not None) and (model.config.model_type == "llama")
        if up:
            layer_up = [m for m in model.modules() if hasattr(m, "up_proj") and m.down_proj is proj][0].up_proj
            assert (layer_up.weight.grad[g:][~active] == 0).all()


def test_own_mode_follows_each_tokens_id_and_excludes_ids():
    model = llama()
    controller = attach_sinks(model, SinkConfig(P_GEN, P_MEM, mode="own"))
    seq = torch.tensor([[3, 3, 8, 8]])
    with controller.sequence_ids(seq):
        scale = controller.scale(torch.device("cpu"), torch.float32)
    g = controller.n_general
    assert (scale[..., :g] == 1).all()
    assert scale[0, 0, g:].bool().tolist() == mask_reference(3, controller.n_sink, P_MEM)
    assert scale[0, 2, g:].bool().tolist() == mask_reference(8, controller.n_sink, P_MEM)
    with controller.using("own", exclude_ids=[8]), controller.sequence_ids(seq):
        excluded = controller.scale(torch.device("cpu"), torch.float32)
    assert not excluded[0, 2, g:].any()
    expect = [a and not b for a, b in zip(mask_reference(3, controller.n_sink, P_MEM), mask_reference(8, controller.n_sink, P_MEM))]
    assert excluded[0, 0, g:].bool().tolist() == expect


@pytest.mark.parametrize("p_gen,p_mem,what", [(0.0, 0.1, "p_gen"), (1.0, 0.1, "p_gen"), (0.5, 0.0, "p_mem"),
                                              (0.5, 1.5, "p_mem"), (0.7, 0.4, "> 1")])
def test_bad_fractions_fail_clearly(p_gen, p_mem, what):
    with pytest.raises(ConfigError, match=what.replace("+", r"\+")):
        SinkConfig(p_gen, p_mem)


def test_save_and_reload_reproduce_masks(tmp_path):
    """A sink model saves as safetensors + card.json["sinks"]; the reload has the same masks and outputs."""
    from unlearn.models.load import _load_local, save_model
    from unlearn.memsinks.sinks import sink_card
    from unlearn.models.tiny import train_tokenizer

    model = llama()
    controller = attach_sinks(model, SinkConfig(P_GEN, P_MEM, seed=11, mode="own"))
    tokenizer = train_tokenizer(["a b c d e f g"] * 4, 300)
    save_model(model, tokenizer, tmp_path / "m", {"sinks": sink_card(model)})
    assert list((tmp_path / "m").glob("*.safetensors"))
    loaded, _ = _load_local(tmp_path / "m", torch.float32)
    again = loaded.sink_controller
    assert again.mode == "drop" and again.n_general == controller.n_general
    ids = torch.arange(1, 500)[None]
    assert torch.equal(again.masks(ids), controller.masks(ids))
    x = torch.randint(1, 50, (1, 6))
    for mode in ("own", "drop", "all"):
        with controller.using(mode), controller.sequence_ids(torch.full_like(x, 77)), \
                again.using(mode), again.sequence_ids(torch.full_like(x, 77)):
            assert torch.equal(model(x).logits, loaded(x).logits)
    copied = copy.deepcopy(loaded)  # the unlearn stage deep-copies models: the hooks must follow the copy's controller
    assert copied.sink_controller is not again
    with copied.sink_controller.using("all"):
        assert not torch.allclose(copied(x).logits, loaded(x).logits)  # loaded stays in drop
        with again.using("all"):
            assert torch.equal(copied(x).logits, loaded(x).logits)


def test_gap_records_follow_the_evaluation_mode():
    """paradigm.eval_mode=all: the losses and gap are the `all` mode's (they were always the dropped-sink ones)."""
    from unlearn.memsinks.losses import gap_metrics, mean_loss
    from unlearn.memsinks.pipeline import records_for

    model = llama()
    attach_sinks(model, SinkConfig(P_GEN, P_MEM, mode="all"))
    sets = {"repeated": ([[1, 2, 3, 4, 5]], [7]), "heldout": ([[6, 7, 8, 9]], [9]), "validation": ([[3, 5, 7]], [11])}
    metrics = gap_metrics(model, sets, 0, evaluated="all")
    assert not [k for k in metrics if "dropped" in k]
    assert metrics["repeated/loss_sinks_all"] == mean_loss(model, *sets["repeated"], 0, mode="all")
    assert metrics["repeated/loss_sinks_all"] != mean_loss(model, *sets["repeated"], 0, mode="drop")
    loss = {r["split"]: r for r in records_for("unlearned", "all", metrics, -1.0, {}) if r["metric"] == "loss"}
    assert loss["repeated"]["value"] == metrics["repeated/loss_sinks_all"] and loss["repeated"]["details"]["sink_mode"] == "all"
