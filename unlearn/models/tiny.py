"""Tiny randomly initialised models and a tokenizer trained on the run's own text.

Tests and smoke runs need a model that memorizes a handful of sequences in seconds. A 49k
vocabulary makes every step slow (ENVIRONMENT.md), so the tokenizer is a small byte-level
BPE trained on the data itself: deterministic for the same text, and able to encode any text.
"""
from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoConfig, GPTNeoForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS)
    return fast


def tiny_config(spec, vocab_size: int):
    """The HF config of a tiny model; also what config-time checks read (no weights needed)."""
    if spec.arch == "gpt_neo":
        return GPTNeoConfig(
            vocab_size=vocab_size,
            hidden_size=spec.hidden_size,
            num_layers=spec.num_layers,
            num_heads=spec.num_heads,
            attention_types=[t for t in ([["global", "local"], spec.num_layers // 2], [["global"], spec.num_layers % 2]) if t[1]],
            max_position_embeddings=spec.max_positions,
            intermediate_size=4 * spec.hidden_size,
            window_size=spec.max_positions,
            embed_dropout=0.0,
            attention_dropout=0.0,
            resid_dropout=0.0,
            bos_token_id=0,
            eos_token_id=0,
        )
    if spec.arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=spec.hidden_size,
            intermediate_size=spec.get("intermediate_size") or 4 * spec.hidden_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_key_value_heads=spec.get("num_kv_heads", spec.num_heads),
            max_position_embeddings=spec.max_positions,
            tie_word_embeddings=True,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
        )
    from unlearn.errors import ConfigError

    raise ConfigError(f"model.arch={spec.arch!r} is not a tiny architecture; use gpt_neo or llama")


def build_tiny_model(spec, vocab_size: int, seed: int) -> torch.nn.Module:
    config = tiny_config(spec, vocab_size)
    torch.manual_seed(seed)
    model_cls = GPTNeoForCausalLM if spec.arch == "gpt_neo" else LlamaForCausalLM
    return model_cls(config)
