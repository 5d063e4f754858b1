"""Teacher-forced passes: one forward gives every position's greedy token and NLL at once."""
from dataclasses import dataclass

import torch

from unlearn.data.collate import pad_right


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
    argmax, nll = [], []
    try:
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start:start + batch_size]
            ids, mask = pad_right(chunk, pad_id)
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = logits.log_softmax(-1)
            target = ids[:, 1:]
            token_nll = -logp.gather(-1, target[..., None]).squeeze(-1)
            best = logits.argmax(-1)
            for row, s in enumerate(chunk):
                n = len(s) - 1
                argmax.append(best[row, :n].tolist())
                nll.append(token_nll[row, :n].tolist())
    finally:
        model.train(was_training)
    return TeacherForced(argmax, nll)
