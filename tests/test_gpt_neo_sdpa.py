"""GPT-Neo SDPA attention equals transformers' eager GPT-Neo: global and local (window 256) layers,
lengths up to 2048, unpadded, right- and left-padded, forward and backward, and with a KV cache."""
import copy

import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM

from unlearn.models.gpt_neo_sdpa import attention_implementation, enable_eager, enable_sdpa


@pytest.fixture(scope="module")
def pair():
    # Small width, GPT-Neo's real window (256) and context (2048); large weights so attention is peaked
    # enough that a wrong mask or a 1/sqrt(d) scale shows at once.
    config = GPTNeoConfig(vocab_size=128, hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=2048,
                          window_size=256, attention_types=[[["global", "local"], 1]], bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    eager = GPTNeoForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in eager.named_parameters():
            if "attention" in name and p.dim() == 2:
                p.mul_(4.0)
    sdpa = enable_sdpa(copy.deepcopy(eager))
    assert attention_implementation(eager) == "eager" and attention_implementation(sdpa) == "sdpa"
    return eager, sdpa


def _close(a, b):
    assert torch.allclose(a, b, atol=2e-4, rtol=1e-4), (a - b).abs().max()


@pytest.mark.parametrize("length", [1, 7, 256, 257, 700, 2048])
def test_unpadded_logits_equal_eager(pair, length):
    eager, sdpa = pair
    ids = torch.randint(0, 128, (2, length), generator=torch.Generator().manual_seed(length))
    with torch.no_grad():
        _close(sdpa(input_ids=ids).logits, eager(input_ids=ids).logits)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_logits_equal_eager_on_real_tokens(pair, side):
    eager, sdpa = pair
    lengths, width = [600, 300, 1], 600
    ids = torch.randint(0, 128, (3, width), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, width - n:] = 1
    with torch.no_grad():
        a = sdpa(input_ids=ids, attention_mask=mask).logits
        b = eager(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.isfinite(a).all()
    _close(a[real], b[real])


def test_gradients_equal_eager(pair):
    eager, sdpa = pair
    eager, sdpa = copy.deepcopy(eager).train(), copy.deepcopy(sdpa).train()
    ids = torch.randint(0, 128, (2, 400), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 300:] = 0
    for model in (eager, sdpa):
        model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss.backward()
    for (name, p), q in zip(eager.named_parameters(), sdpa.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-3), name


def test_cached_decoding_equals_eager_past_the_window(pair):
    eager, sdpa = pair
    ids = torch.randint(0, 128, (2, 262), generator=torch.Generator().manual_seed(3))
    outs = []
    for model in (eager, sdpa):
        with torch.no_grad():
            step = model(input_ids=ids[:, :252], use_cache=True)
            logits = [step.logits[:, -1]]
            past = step.past_key_values
            for t in range(252, 262):  # single-token steps whose keys cross the 256 window
                step = model(input_ids=ids[:, t:t + 1], past_key_values=past, use_cache=True)
                past = step.past_key_values
                logits.append(step.logits[:, -1])
        outs.append(torch.stack(logits, 1))
    _close(outs[1], outs[0])


def test_eager_is_restorable(pair):
    _, sdpa = pair
    back = enable_eager(copy.deepcopy(sdpa))
    assert attention_implementation(back) == "eager"
    assert type(back.transformer.h[0].attn.attention).__name__ == "GPTNeoSelfAttention"


@pytest.mark.parametrize("choice,expected", [(None, "sdpa"), ("eager", "eager")])
def test_loader_applies_the_model_attention_option(choice, expected, tmp_path):
    from tests.conftest import compose
    from unlearn.models.load import load_model

    spec = compose(["model=tiny-gpt-neo"] + ([f"model.attention={choice}"] if choice else [])).model
    model, _ = load_model(spec, tmp_path, corpus=["alpha beta gamma delta"] * 20)
    assert attention_implementation(model) == expected
    assert type(model.transformer.h[0].attn.attention).__name__ == (
        "GPTNeoSdpaSelfAttention" if expected == "sdpa" else "GPTNeoSelfAttention")
