"""The brute-force reference for EL's continuations: one HF `generate` per prefix length.

What the engine (engine.py + memorization.prefix_continuations) must equal, token for token; the
tests and benchmarks/bench_el.py compare against it. Greedy, no EOS stop (Jang's EL decodes every
continuation to the full length), prompts left-padded as `generate` expects.
"""
import copy

import torch


@torch.no_grad()
def generate_per_prefix_length(model, seqs: list[list[int]], pad_id: int, batch_size: int = 64) -> list[dict[int, list[int]]]:
    """For every sequence s and prefix length i in 1..len(s)-1, the greedy continuation to len(s) tokens."""
    device = next(model.parameters()).device
    config = copy.deepcopy(model.generation_config)
    config.eos_token_id, config.pad_token_id = None, pad_id
    config.do_sample, config.num_beams, config.max_length = False, 1, None
    config.temperature = config.top_p = config.top_k = None
    was_training = model.training
    model.eval()
    out: list[dict[int, list[int]]] = [{} for _ in seqs]
    try:
        for i in range(1, max(len(s) for s in seqs)):
            for new in sorted({len(s) - i for s in seqs if len(s) > i}):
                group = [k for k, s in enumerate(seqs) if len(s) - i == new]
                for start in range(0, len(group), batch_size):
                    rows = group[start:start + batch_size]
                    ids = torch.tensor([seqs[k][:i] for k in rows], device=device)
                    config.max_new_tokens, config.min_new_tokens = new, 0
                    gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
                    for k, row in zip(rows, gen[:, i:].tolist()):
                        out[k][i] = row
    finally:
        model.train(was_training)
    return out
