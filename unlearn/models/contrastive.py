"""A pair of causal LMs that behaves as one: logits z_o − γ·ReLU(z_mem − z_o) (CD, spec §2.6).

It has the Hugging Face forward signature the decoding loop and teacher-forced passes use
(input_ids, attention_mask, position_ids, past_key_values, use_cache -> .logits, .past_key_values).
`past_key_values` is a `PairCache` holding each model's own KV cache, so incremental decoding costs
one cached step per model. Saved as two sub-folders plus `contrastive.json`; `load_model` reads it back.
"""
import json
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

CARD = "contrastive.json"


class PairCache(NamedTuple):
    original: object
    memorized: object


def contrast(original_logits: torch.Tensor, memorized_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """Penalize only the tokens the memorized model likes more than the original."""
    return original_logits - gamma * F.relu(memorized_logits - original_logits)


class ContrastivePair(torch.nn.Module):
    def __init__(self, original: torch.nn.Module, memorized: torch.nn.Module, gamma: float):
        super().__init__()
        self.original = original
        self.memorized = memorized
        self.gamma = float(gamma)

    @property
    def config(self):
        return self.original.config

    def get_input_embeddings(self):
        return self.original.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None, labels=None,
                **kwargs):
        past = past_key_values if past_key_values is not None else PairCache(None, None)
        common = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids,
                  "use_cache": use_cache, **kwargs}
        out_o = self.original(past_key_values=past.original, **common)
        out_m = self.memorized(past_key_values=past.memorized, **common)
        logits = contrast(out_o.logits, out_m.logits, self.gamma)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), labels[:, 1:], ignore_index=-100)
        cache = PairCache(out_o.past_key_values, out_m.past_key_values) if use_cache else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache)

    def save_pretrained(self, path, **kwargs) -> None:
        path = Path(path)
        self.original.save_pretrained(path / "original", **kwargs)
        self.memorized.save_pretrained(path / "memorized", **kwargs)
        card = {"formula": "z_o - gamma * relu(z_mem - z_o)", "gamma": self.gamma, "original": "original", "memorized": "memorized"}
        (path / CARD).write_text(json.dumps(card, indent=2))

    @classmethod
    def from_pretrained(cls, path, dtype=None) -> "ContrastivePair":
        from transformers import AutoModelForCausalLM

        path = Path(path)
        card = json.loads((path / CARD).read_text())
        original = AutoModelForCausalLM.from_pretrained(path / card["original"], dtype=dtype, use_safetensors=True)
        memorized = AutoModelForCausalLM.from_pretrained(path / card["memorized"], dtype=dtype, use_safetensors=True)
        return cls(original, memorized, card["gamma"])


def is_contrastive_folder(path) -> bool:
    return (Path(path) / CARD).is_file()
