"""The EL engine (branches decoded from the teacher-forced pass's KV cache, batched across sequences)
equals the brute-force reference, one HF `generate` per prefix length, token for token."""
import pytest
import torch

from unlearn.generation import teacher_forced
from unlearn.generation.engine import decode_branches
from unlearn.generation.reference import generate_per_prefix_length
from unlearn.metrics.memorization import prefix_continuations

T = 12  # prefix lengths 1..11 per sequence: every branch shape, and HF generate is slow on a busy CPU


def _seqs(tiny_setup):
    enc = tiny_setup["encoded"]
    return [s[:T] for s in enc["forget"].input_ids[:2] + enc["holdout"].input_ids[:2]]


@pytest.mark.parametrize("model_key", ["target", "base"])  # memorized (few branches) and random (a branch everywhere)
def test_engine_equals_one_generate_per_prefix_length(tiny_setup, model_key):
    model, pad = tiny_setup[model_key], tiny_setup["tokenizer"].pad_token_id
    seqs = _seqs(tiny_setup)
    reference = generate_per_prefix_length(model, seqs, pad)
    fast = prefix_continuations(model, teacher_forced(model, seqs, pad), seqs, pad, batch_size=16)
    assert fast == reference
    # every branch from its cache slice, batched across sequences in mixed-length batches of 7 from chunks of 3 sequences
    branches = [(s, j) for s in range(len(seqs)) for j in range(1, T)]
    direct = decode_branches(model, seqs, branches, pad, batch_size=7, seq_batch_size=3)
    assert all(direct[(s, j)] == reference[s][j] for s, j in branches)


def test_engine_handles_sequences_of_different_lengths(tiny_setup):
    model, pad = tiny_setup["base"], tiny_setup["tokenizer"].pad_token_id
    seqs = [s[:n] for s, n in zip(_seqs(tiny_setup), [12, 5, 2, 12])]
    reference = generate_per_prefix_length(model, seqs, pad)
    assert prefix_continuations(model, teacher_forced(model, seqs, pad), seqs, pad, batch_size=5) == reference
