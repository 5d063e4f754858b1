"""Shared loss primitives (spec §1). Labels follow the HF convention: -100 is ignored, shift by one."""
import torch
import torch.nn.functional as F

IGNORE = -100


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits to float32 for softmax/CE; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return logits[:, :-1], labels[:, 1:]


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position NLL of the next token, 0 where masked. Shape [B, T-1]."""
    logits, labels = shift(logits, labels)
    nll = F.cross_entropy(upcast(logits).transpose(1, 2), labels.clamp(min=0), reduction="none")
    return nll * (labels != IGNORE)


def valid(labels: torch.Tensor) -> torch.Tensor:
    return labels[:, 1:] != IGNORE


def mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Token-mean NLL over the batch (what HF's `outputs.loss` computes)."""
    return token_nll(logits, labels).sum() / valid(labels).sum().clamp(min=1)


def seq_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_nll(logits, labels).sum(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = upcast(logits).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """EMSO's L_EM (spec §2.9a): minus the mean next-token entropy over valid positions."""
    logits, _ = shift(logits, labels)
    mask = valid(labels)
    return -(token_entropy(logits) * mask).sum() / mask.sum().clamp(min=1)
