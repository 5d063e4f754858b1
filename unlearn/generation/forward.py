"""Teacher-forced passes: one forward gives every position's greedy token and NLL at once."""
from dataclasses import dataclass

import torch

from unlearn.data.collate import pad_right
from unlearn.ranks import shard_map


@dataclass
class TeacherForced:
    # For sequence s, argmax[s][i] is the greedy prediction of token i+1 given tokens 0..i,
    # and nll[s][i] is -log p(token i+1 | tokens 0..i).
    argmax: list[list[int]]
    nll: list[list[float]]


@torch.no_grad()
def teacher_forced(model, seqs: list[list[int]], pad_id: int, batch_size: int = 16) -> TeacherForced:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def one_batch(chunk):
        ids, mask = pad_right(chunk, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = logits.log_softmax(-1)
        token_nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        best = logits.argmax(-1)
        return [(best[row, :len(s) - 1].tolist(), token_nll[row, :len(s) - 1].tolist()) for row, s in enumerate(chunk)]

    try:  # under several processes each takes a share of the batches (unlearn/ranks.py)
        rows = [row for part in shard_map(one_batch, [seqs[i:i + batch_size] for i in range(0, len(seqs), batch_size)])
                for row in part]
    finally:
        model.train(was_training)
    return TeacherForced([a for a, _ in rows], [n for _, n in rows])
