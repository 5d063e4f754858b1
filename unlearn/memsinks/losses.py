"""Per-document language-model loss in a given sink mode: what the memorization gap is made of.

Every document is scored alone (no packing), token-weighted over all its predicted tokens. In `own` mode
each document runs with the mask of its own id (the training id for the repeated set, a fresh hash id for
held-out text); `drop` and `all` need no ids.
"""
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from unlearn.memsinks.sinks import controller_of
from unlearn.ranks import shard_map


@torch.no_grad()
def mean_loss(model, documents: list[list[int]], ids: list[int] | None, pad_id: int, batch_size: int = 16,
              mode: str | None = None) -> float:
    controller = controller_of(model)
    device = next(model.parameters()).device

    def one_batch(start: int) -> tuple[float, int]:
        chunk = documents[start:start + batch_size]
        width = max(len(d) for d in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, d in enumerate(chunk):
            input_ids[i, :len(d)] = torch.tensor(d)
            attention[i, :len(d)] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        context = nullcontext()
        if controller is not None and mode is not None:
            context = controller.using(mode)
        seq = None
        if controller is not None and mode == "own":
            seq = torch.tensor(ids[start:start + batch_size], device=device)[:, None].expand(-1, width)
        with context, (controller.sequence_ids(seq) if controller is not None else nullcontext()):
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
        labels = input_ids[:, 1:].masked_fill(attention[:, 1:] == 0, -100)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                               reduction="sum")
        return loss.item(), int((labels != -100).sum())

    was_training = model.training
    model.eval()
    try:  # under several processes each rank scores a share of the batches (unlearn/ranks.py); summed in order
        parts = shard_map(one_batch, list(range(0, len(documents), batch_size)))
    finally:
        model.train(was_training)
    total, count = 0.0, 0
    for loss, n in parts:
        total += loss
        count += n
    return total / max(1, count)


# The metric-name suffix of each sink mode's losses.
SUFFIX = {"own": "_sinks_on", "drop": "_sinks_dropped", "all": "_sinks_all"}


def gap_metrics(model, sets: dict, pad_id: int, batch_size: int = 16, evaluated: str = "drop") -> dict[str, float]:
    """Losses on the repeated, held-out and validation sets and the memorization gap (repeated minus
    held-out; negative = memorized). Sink models: with sinks on (`own`) and in the `evaluated` mode
    (`drop`, the forgetting step, or `all`)."""
    modes = [None] if controller_of(model) is None else ["own", evaluated]
    out = {}
    for mode in modes:
        suffix = SUFFIX[mode] if mode else ""
        for name, (docs, ids) in sets.items():
            out[f"{name}/loss{suffix}"] = mean_loss(model, docs, ids, pad_id, batch_size, mode)
        out[f"memgap{suffix}"] = out[f"repeated/loss{suffix}"] - out[f"heldout/loss{suffix}"]
    return out
