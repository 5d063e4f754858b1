"""Batches for training: right padding, attention mask, and labels with -100 on padding and on a QA
record's prompt (question and chat-template tokens: `EncodedSplit.label_starts`)."""
import torch
from torch.utils.data import Dataset

from unlearn.data.encode import EncodedSplit

IGNORE = -100


class SequenceDataset(Dataset):
    def __init__(self, encoded: EncodedSplit):
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.encoded.input_ids[i], "prefix_len": self.encoded.prefix_lens[i],
                "label_start": self.encoded.label_starts[i], "index": i}


def pad_right(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, : len(s)] = 1
    return ids, mask


class Collator:
    """Labels are -100 on padding and before each item's `label_start` (a QA prompt), always;
    `labels_from_prefix=True` also masks a text record's prefix (spec A1 `continuation_from=p`)."""

    def __init__(self, pad_id: int, labels_from_prefix: bool = False):
        self.pad_id = pad_id
        self.labels_from_prefix = labels_from_prefix

    def __call__(self, items: list[dict]) -> dict:
        ids, mask = pad_right([it["input_ids"] for it in items], self.pad_id)
        labels = ids.masked_fill(mask == 0, IGNORE)
        for row, it in enumerate(items):
            start = max(it.get("label_start", 0), it["prefix_len"] if self.labels_from_prefix else 0)
            labels[row, :start] = IGNORE
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "prefix_len": torch.tensor([it["prefix_len"] for it in items]),
            "index": torch.tensor([it["index"] for it in items]),
        }
