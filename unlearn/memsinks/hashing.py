"""Sequence id -> sink mask: a deterministic, well-mixed hash of (sequence id, unit, seed).

Spec §2.11 [I]: the reference uses a modular power hash with int64 overflow; any well-mixed deterministic
hash will do, as long as it is a tested pure function. Hand-rolled (no library hashes integer tensors on
the accelerator): a 32-bit integer hash (two xorshift-multiply rounds, constant 0x45d9f3b) evaluated in
int64 arithmetic where every product stays below 2**63, so it is exact on any device and in any process,
and `mask_reference` reproduces it with plain Python integers.
"""
import hashlib

import torch

MASK32 = 0xFFFFFFFF
MIX = 0x45D9F3B          # < 2**27: (x < 2**32) * MIX < 2**59, no int64 overflow
SEED_MUL = 0x61C88647    # < 2**31: (seed < 2**32) * SEED_MUL < 2**63
MAX_ID = 2**31 - 1       # ids live in [1, MAX_ID]; 0 is reserved (turns every sink on, as in the reference)


def _mix32(x):
    """Works on Python ints and int64 tensors alike (all intermediate values < 2**63)."""
    x = (((x >> 16) ^ x) * MIX) & MASK32
    x = (((x >> 16) ^ x) * MIX) & MASK32
    return (x >> 16) ^ x


def unit_hash(seq_id, unit, seed: int = 0):
    """32-bit hash of (sequence id, unit index, seed); ints or broadcastable int64 tensors."""
    salt = _mix32(((seed & MASK32) * SEED_MUL + unit) & MASK32)
    return _mix32((salt + (seq_id & MASK32)) & MASK32)


def threshold(p_mem: float) -> int:
    return int(p_mem * 2**32)


def sink_mask(seq_ids: torch.Tensor, n_sink: int, p_mem: float, seed: int = 0) -> torch.Tensor:
    """Bool mask `seq_ids.shape + (n_sink,)`: sink unit j active for id s iff hash(s, j, seed) < p_mem·2^32.
    Id 0 turns every sink on. Computed once per distinct id, then gathered per token."""
    flat = seq_ids.reshape(-1).to(torch.int64)
    unique, inverse = torch.unique(flat, return_inverse=True)
    units = torch.arange(n_sink, device=flat.device, dtype=torch.int64)
    active = unit_hash(unique[:, None], units[None, :], seed) < threshold(p_mem)
    active |= (unique == 0)[:, None]
    return active[inverse].reshape(*seq_ids.shape, n_sink)


def mask_reference(seq_id: int, n_sink: int, p_mem: float, seed: int = 0) -> list[bool]:
    """The same mask from plain Python integers (tests compare the tensor path against it)."""
    if seq_id == 0:
        return [True] * n_sink
    return [unit_hash(seq_id, j, seed) < threshold(p_mem) for j in range(n_sink)]


def document_id(text: str) -> int:
    """Default id of a document: a hash of its text, in [1, MAX_ID] (ids start at 1)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") % MAX_ID + 1
