"""EMSO's contrastive-gradient block score and top-k selection (spec §2.9c), as pure functions."""
import math

import torch

from unlearn.models.blocks import Block

EPS = 1e-12


def block_scores(blocks: list[Block], g_nll: dict[str, torch.Tensor], g_em: dict[str, torch.Tensor], direction: bool = True) -> torch.Tensor:
    """M_b = cos(g_NLL,b, g_EM,b) * |g_EM,b|_1 / sqrt(D_b); with direction=False ("w/o Dir") only the magnitude."""
    scores = []
    for block in blocks:
        ge = block.view(g_em[block.param]).reshape(-1).double()
        magnitude = ge.abs().sum() / math.sqrt(ge.numel())
        if not direction:
            scores.append(magnitude)
            continue
        gn = block.view(g_nll[block.param]).reshape(-1).double()
        cos = (gn @ ge) / ((gn.norm() + EPS) * (ge.norm() + EPS))
        scores.append(cos * magnitude)
    return torch.stack(scores)


def select_blocks(blocks: list[Block], scores: torch.Tensor, k: int, strategy: str, generator: torch.Generator | None = None) -> list[Block]:
    """contrastive: the k most negative M; magnitude: the k largest |g_EM|_1/sqrt(D); random: any k."""
    if strategy == "random":
        order = torch.randperm(len(blocks), generator=generator)[:k]
    elif strategy == "magnitude":
        order = torch.topk(scores, k).indices
    else:
        order = torch.topk(-scores, k).indices
    return [blocks[i] for i in order.tolist()]
