"""The static-cache decode loop (generation/static_cache.py), the GPU path's semantics, gives the dynamic
loop's tokens on the CPU: plain prompt decoding and EL branches, Llama and GPT-Neo (whose local window
must be measured from the query's own slot once keys run past the queries), eager and compiled."""
import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM, LlamaConfig, LlamaForCausalLM

from unlearn.errors import ConfigError
from unlearn.generation import decode
from unlearn.generation.engine import decode_branches
from unlearn.generation.static_cache import decode_mode, resolve_mode, set_decode_mode
from unlearn.models.gpt_neo_sdpa import enable_eager, enable_sdpa

VOCAB, PAD = 61, 0


def _llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                        pad_token_id=PAD)).eval()


def _gpt_neo(window=4):
    """Window 4, so sequences of 12 tokens cross it and a 64-slot static cache is far past it."""
    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, attention_types=[[["global", "local"], 1]],
                       window_size=window, max_position_embeddings=128, pad_token_id=PAD)
    return enable_sdpa(GPTNeoForCausalLM(cfg)).eval()


def _prompts(n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, VOCAB, (int(length),), generator=g).tolist() for length in torch.randint(2, 9, (n,), generator=g)]


def _both_modes(model, fn, mode="static"):
    set_decode_mode(model, "dynamic")
    dynamic = fn()
    set_decode_mode(model, mode)
    assert decode_mode(model) == mode
    static = fn()
    set_decode_mode(model, "dynamic")
    return dynamic, static


@pytest.mark.parametrize("build", [_llama, _gpt_neo], ids=["llama", "gpt_neo_window4"])
def test_static_cache_decodes_the_dynamic_tokens(build):
    model = build()
    prompts = _prompts()
    dynamic, static = _both_modes(model, lambda: decode(model, prompts, [10, 3, 7, 10, 1], PAD, batch_size=4))
    assert static == dynamic
    assert [len(o) for o in static] == [10, 3, 7, 10, 1]


@pytest.mark.parametrize("build", [_llama, _gpt_neo], ids=["llama", "gpt_neo_window4"])
def test_static_cache_el_branches_equal_dynamic(build):
    model = build()
    seqs = [p + p[::-1] + [5, 7] for p in _prompts(4, seed=2)]  # 6..18 tokens: crosses GPT-Neo's window of 4
    branches = [(s, j) for s, seq in enumerate(seqs) for j in range(1, len(seq))]
    dynamic, static = _both_modes(model, lambda: decode_branches(model, seqs, branches, PAD, batch_size=7, seq_batch_size=3))
    assert static == dynamic


def test_gpt_neo_eager_attention_refuses_a_static_cache():
    """transformers' eager GPT-Neo slices its window band as if the queries were the last keys: wrong in a static
    cache, so it is never put on one, and asking for it is a clear error."""
    model = enable_eager(_gpt_neo())
    assert resolve_mode(model, "auto", torch.device("cuda")) == "dynamic"
    with pytest.raises(ConfigError, match="eval.decode_cache=dynamic"):
        resolve_mode(model, "static", torch.device("cpu"))
    assert resolve_mode(_llama(), "auto", torch.device("cuda")) == "compiled"
    assert resolve_mode(_llama(), "auto", torch.device("cpu")) == "dynamic"


@pytest.mark.slow
def test_compiled_static_step_decodes_the_dynamic_tokens():
    """The compiled step (inductor on the CPU; CUDA graphs on CUDA) traces the static-cache step correctly."""
    model = _llama()
    prompts = _prompts()
    dynamic, compiled = _both_modes(model, lambda: decode(model, prompts, 6, PAD, batch_size=8), mode="compiled")
    assert compiled == dynamic


def test_evaluation_placement_sets_the_configured_mode():
    from tests.conftest import compose
    from unlearn.stages.device import placement

    cfg = compose(["eval.decode_cache=static"])
    model = placement(cfg.trainer, cfg.eval).for_eval(_llama())
    assert decode_mode(model) == "static"
    cfg = compose([])
    assert decode_mode(placement(cfg.trainer, cfg.eval).for_eval(_llama())) == "dynamic"  # auto on the CPU
    with pytest.raises(ConfigError, match="eval.decode_cache='paged'"):
        placement(cfg.trainer, compose(["eval.decode_cache=paged"]).eval)


def test_a_failing_compiled_step_falls_back_to_static_with_the_same_tokens(monkeypatch, caplog):
    """A compiler failure on some GPU machine must not end the evaluation: the loop repeats the call eagerly."""
    import importlib

    decode_module = importlib.import_module("unlearn.generation.decode")  # the package re-exports `decode`, the function

    model = _llama()
    prompts = _prompts()
    set_decode_mode(model, "dynamic")
    dynamic = decode(model, prompts, 6, PAD, batch_size=8)

    def broken(*args, **kwargs):
        raise RuntimeError("backend not available\nsecond line")

    monkeypatch.setattr(decode_module, "step_function", lambda m, mode: broken if mode == "compiled" else m)
    set_decode_mode(model, "compiled")
    assert decode(model, prompts, 6, PAD, batch_size=8) == dynamic
    assert decode_mode(model) == "static"
    assert "compiled decode step failed (RuntimeError: backend not available)" in caplog.text
