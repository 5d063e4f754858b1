"""Greedy branch decoding from a teacher-forced pass's KV cache (the EL engine, issue #11).

EL from every prefix needs, per sequence s and mismatch position j, the greedy continuation of
s[:j] (memorization.prefix_continuations finds which (s, j) are needed; the rest are reused). A fresh
`decode` of s[:j] would prefill j tokens again for every branch. Here one causal forward over s (the
teacher-forced pass, right-padded) already holds the keys and values of every prefix of s, and its
logit at j-1 is the branch's first greedy token. So each branch starts from a slice of that cache,
with no second prefill, and only its remaining tokens are decoded.

Branches are batched across sequences and sorted by their remaining length, so a batch decodes
about as many steps as each of its rows needs. The step loop is `decode.run_steps`, the one every
metric's decoding shares. Models whose cache is not a plain per-layer tensor cache holding the
whole sequence (a contrastive pair, a sliding-window cache shorter than the sequence) fall back to
`decode`, which prefills each branch: same outputs, slower.
"""
import torch

from unlearn.data.collate import pad_right
from unlearn.generation.decode import _device, _last_logits_only, decode, layer_tensors, run_steps
from unlearn.ranks import shard_map


def _branch_layers(layers, rows: torch.Tensor, prefix: torch.Tensor) -> tuple[list, torch.Tensor]:
    """The keys and values of `len(rows)` branches, left-padded to the longest prefix: branch b holds
    positions 0..prefix[b]-1 of sequence rows[b]; its attention mask is 0 on the padding. `run_steps`
    puts them in the cache its mode decodes with (dynamic or static), so they are copied once."""
    width = int(prefix.max())
    pos = torch.arange(width, device=prefix.device)
    pad = (width - prefix)[:, None]
    mask = (pos[None, :] >= pad).long()
    source = (pos[None, :] - pad).clamp(min=0)  # padding slots copy position 0; masked out anyway
    gathered = []
    for keys, values in layers:
        index = source[:, None, :, None].expand(-1, keys.shape[1], -1, keys.shape[-1])
        gathered.append((keys[rows].gather(2, index), values[rows].gather(2, index)))
    return gathered, mask


@torch.no_grad()
def decode_branches(model, seqs: list[list[int]], branches: list[tuple[int, int]], pad_id: int, batch_size: int = 64,
                    seq_batch_size: int = 16) -> dict[tuple[int, int], list[int]]:
    """Greedy continuation of seqs[s][:j] to len(seqs[s]) tokens for every branch (s, j), 1 <= j < len(seqs[s])."""
    by_seq: dict[int, list[int]] = {}
    for s, j in branches:
        by_seq.setdefault(s, []).append(j)
    order = sorted(by_seq)
    device = _device(model)
    extra = _last_logits_only(model)

    def one_chunk(chunk) -> dict[tuple[int, int], list[int]]:
        ids, mask = pad_right([seqs[s] for s in chunk], pad_id)
        ids, mask = ids.to(device), mask.to(device)
        result = model(input_ids=ids, attention_mask=mask, use_cache=True)  # the teacher-forced pass
        layers = layer_tensors(result.past_key_values, ids.shape[1])
        todo = sorted(((len(seqs[s]) - j, row, s, j) for row, s in enumerate(chunk) for j in by_seq[s]))
        if layers is None:  # no sliceable cache: prefill each branch instead (same outputs)
            outs = decode(model, [seqs[s][:j] for _, _, s, j in todo], [n for n, *_ in todo], pad_id, batch_size)
            return {(s, j): o for (_, _, s, j), o in zip(todo, outs)}
        first = result.logits.argmax(-1)  # first[row, j-1]: the greedy token after prefix j
        del result
        out = {}
        for b in range(0, len(todo), batch_size):
            part = todo[b:b + batch_size]
            rows = torch.tensor([r for _, r, _, _ in part], device=device)
            prefix = torch.tensor([j for *_, j in part], device=device)
            branch_layers, branch_mask = _branch_layers(layers, rows, prefix)
            outs = run_steps(model, first[rows, prefix - 1], branch_layers, branch_mask, (prefix - 1)[:, None],
                             [n for n, *_ in part], pad_id, None, None, None, extra)
            out.update({(s, j): o for (_, _, s, j), o in zip(part, outs)})
        return out

    was_training = model.training
    model.eval()
    try:  # under several processes each takes a share of the sequence chunks (unlearn/ranks.py)
        parts = shard_map(one_chunk, [order[i:i + seq_batch_size] for i in range(0, len(order), seq_batch_size)])
    finally:
        model.train(was_training)
    return {branch: out for part in parts for branch, out in part.items()}
