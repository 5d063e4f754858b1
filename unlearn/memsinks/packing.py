"""Documents with sequence ids -> packed training rows where attention never crosses ids.

Each row is a slice of the stream of documents (each ending in EOS). A token attends to earlier tokens
of its own id only (causal ∧ same id): a 4D additive mask, which HF Llama and GPT-Neo take as is
(eager and SDPA). Position ids restart at every document, so a document is seen exactly as it would be
alone, and the first token of each document is not a label (it would be predicted from another id).
"""
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

PAD_ID = 0  # sequence id of padding at the tail of the last row (never a label)


@dataclass
class Document:
    tokens: list[int]
    seq_id: int


@dataclass
class PackedRows:
    input_ids: torch.Tensor   # [rows, length]
    seq_ids: torch.Tensor     # [rows, length]
    position_ids: torch.Tensor
    labels: torch.Tensor      # -100 at padding and at the first token of every document run

    def __len__(self):
        return self.input_ids.shape[0]


def pack(documents: list[Document], length: int, eos_id: int, pad_token_id: int) -> PackedRows:
    tokens, ids = [], []
    for doc in documents:
        piece = list(doc.tokens) + [eos_id]
        tokens += piece
        ids += [doc.seq_id] * len(piece)
    rows = -(-len(tokens) // length)
    pad = rows * length - len(tokens)
    input_ids = torch.tensor(tokens + [pad_token_id] * pad).view(rows, length)
    seq_ids = torch.tensor(ids + [PAD_ID] * pad).view(rows, length)
    starts = torch.ones_like(seq_ids, dtype=torch.bool)
    starts[:, 1:] = seq_ids[:, 1:] != seq_ids[:, :-1]
    # Two adjacent documents with the same id (repetitions side by side) are still two documents.
    boundary = torch.zeros(rows * length, dtype=torch.bool)
    offset = 0
    for doc in documents:
        boundary[offset] = True
        offset += len(doc.tokens) + 1
    starts |= boundary[: rows * length].view(rows, length)
    position_ids = _positions(starts)
    labels = input_ids.clone()
    labels[starts | (seq_ids == PAD_ID)] = -100
    return PackedRows(input_ids, seq_ids, position_ids, labels)


def _positions(starts: torch.Tensor) -> torch.Tensor:
    """Index within the run that began at the last start (per row)."""
    idx = torch.arange(starts.shape[1]).expand_as(starts)
    last_start = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - last_start


def attention_bias(seq_ids: torch.Tensor, position_ids: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """[batch, 1, T, T] additive mask: 0 where query i may see key j (j <= i, same id, same document run),
    dtype-min elsewhere. A document run is recovered from the position ids (j >= i - position_i)."""
    t = seq_ids.shape[1]
    idx = torch.arange(t, device=seq_ids.device)
    causal = idx[None, :] <= idx[:, None]
    same_id = seq_ids[:, :, None] == seq_ids[:, None, :]
    run_start = (idx[None, :] - position_ids)  # [batch, T]: where each query's document began
    in_run = idx[None, None, :] >= run_start[:, :, None]
    allowed = causal[None] & same_id & in_run
    bias = torch.zeros(allowed.shape, dtype=dtype, device=seq_ids.device)
    bias.masked_fill_(~allowed, torch.finfo(dtype).min)
    return bias[:, None]


class PackedDataset(Dataset):
    def __init__(self, rows: PackedRows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows
        return {"input_ids": r.input_ids[i], "seq_ids": r.seq_ids[i], "position_ids": r.position_ids[i], "labels": r.labels[i]}
