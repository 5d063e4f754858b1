"""Which next-token positions a loss averages over, as a [B, T-1] mask aligned with shifted logits.

`answer_only`: targets after the record's prefix (a QA record's answer and its EOS; the continuation
of a text record), padding excluded. `all_nonpad`: every real target token. `all_incl_pad`: every
position, padding too (Closer-Look's mask=false, where labels are the padded input ids).
"""
import torch

POSITIONS = ("answer_only", "all_nonpad", "all_incl_pad")
# KL, DI and PDU: label positions (spec A9 default) or every position, as the reference code does.
LABEL_OR_ALL = ("labels", "all")


def target_positions(batch: dict) -> torch.Tensor:
    """Index in the sequence of the token each shifted position predicts: 1 .. T-1."""
    width = batch["input_ids"].shape[1]
    return torch.arange(1, width, device=batch["input_ids"].device)[None, :]


def position_mask(batch: dict, positions: str) -> torch.Tensor:
    real = batch["attention_mask"][:, 1:].bool()
    if positions == "all_incl_pad":
        return torch.ones_like(real)
    if positions == "all_nonpad":
        return real
    return real & (target_positions(batch) >= batch["prefix_len"][:, None])


def answer_labels(batch: dict) -> torch.Tensor:
    """The batch's labels with the prefix (the question) masked: scores answers only."""
    labels = batch["labels"].clone()
    before = torch.arange(labels.shape[1], device=labels.device)[None, :] < batch["prefix_len"][:, None]
    return labels.masked_fill(before, -100)
