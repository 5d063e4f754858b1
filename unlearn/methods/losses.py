"""Shared loss primitives (spec §1). Labels follow the HF convention: -100 is ignored, shift by one.

`tokens`, where a primitive takes it, is the denominator of its token mean: None = the batch's own count;
training passes the optimizer step's count / (processes x accumulation) (methods/token_window.py)."""
import math

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


def _denominator(mask: torch.Tensor, tokens: float | None):
    return mask.sum().clamp(min=1) if tokens is None else tokens


def mean_nll(logits: torch.Tensor, labels: torch.Tensor, tokens: float | None = None) -> torch.Tensor:
    """Token-mean NLL over the batch (what HF's `outputs.loss` computes)."""
    return token_nll(logits, labels).sum() / _denominator(valid(labels), tokens)


def seq_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return token_nll(logits, labels).sum(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = upcast(logits).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def entropy_loss(logits: torch.Tensor, labels: torch.Tensor, tokens: float | None = None) -> torch.Tensor:
    """EMSO's L_EM (spec §2.9a): minus the mean next-token entropy over valid positions."""
    logits, _ = shift(logits, labels)
    return -masked_mean(token_entropy(logits), valid(labels), tokens)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, tokens: float | None = None) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / _denominator(mask, tokens)


# --- KL to a frozen reference (spec §2.3) -----------------------------------------------------------
def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, positions: str = "labels",
                    tokens: float | None = None) -> torch.Tensor:
    """KL(P_ref || P_θ). `labels`: mean over valid next-token positions. `all`: the reference code's
    kl_div(..., reduction='batchmean') on all B·T rows flattened, prompt and padding rows included."""
    logp, ref_logp = upcast(logits).log_softmax(-1), upcast(ref_logits).log_softmax(-1)
    if positions == "all":
        vocab = logp.shape[-1]
        return F.kl_div(logp.reshape(-1, vocab), ref_logp.reshape(-1, vocab), log_target=True, reduction="batchmean")
    logp, ref_logp = logp[:, :-1], ref_logp[:, :-1]
    per_position = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return masked_mean(per_position, valid(labels), tokens)


# --- DI / UNDIAL (spec §2.4) -------------------------------------------------------------------------
def imagined_target(teacher_logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """softmax(z_teacher − γ·e_y): the teacher with its true-token logit lowered by γ."""
    z = upcast(teacher_logits)
    index = targets[..., None]
    return z.scatter_add(-1, index, z.new_full(index.shape, -gamma)).softmax(-1)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """−Σ_k s_k log P_k per position."""
    return -(target_probs * upcast(logits).log_softmax(-1)).sum(-1)


def deliberate_imagination_loss(logits, teacher_logits, input_ids, labels, gamma: float, positions: str = "labels",
                                tokens: float | None = None) -> torch.Tensor:
    """Self-distillation towards the γ-lowered teacher. `labels`: valid label positions only.
    `all` (the DI code): every position, the next input token as the one to lower (padding included)."""
    logits, teacher_logits = logits[:, :-1], teacher_logits[:, :-1]
    if positions == "all":  # every position, padding too: a per-batch mean whatever `tokens` says
        targets, mask, tokens = input_ids[:, 1:], torch.ones_like(input_ids[:, 1:], dtype=torch.bool), None
    else:
        targets, mask = labels[:, 1:].clamp(min=0), valid(labels)
    return masked_mean(soft_cross_entropy(logits, imagined_target(teacher_logits, targets, gamma)), mask, tokens)


# --- ME (spec §2.7) ----------------------------------------------------------------------------------
def uniform_divergence(logits: torch.Tensor, variant: str) -> torch.Tensor:
    """Per-position ME term, minimized at the uniform distribution.
    `neg_entropy` (paper prose, EMSO): −H(P) = KL(P‖U) − log V.
    `kl_u_p` (Closer-Look code's kl_div(log P, U)): KL(U‖P) = −log V − (1/V) Σ_k log P_k."""
    logp = upcast(logits).log_softmax(-1)
    if variant == "neg_entropy":
        return (logp.exp() * logp).sum(-1)
    return -math.log(logp.shape[-1]) - logp.mean(-1)


# --- IDK+AP (spec §2.8) ------------------------------------------------------------------------------
def answer_preservation(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """−(1/β)·mean log σ(β·margin), margin = log π(y_true|q) − log π(y_idk|q) (sequence sums)."""
    return F.softplus(-beta * margin).mean() / beta


# --- PDU (spec §2.10) --------------------------------------------------------------------------------
def logit_margin(logits: torch.Tensor) -> torch.Tensor:
    """(max_k z_k − mean_k z_k)² per position: 0 iff every logit is equal (uniform prediction)."""
    logits = upcast(logits)
    return (logits.max(-1).values - logits.mean(-1)) ** 2


def logit_margin_loss(logits: torch.Tensor, labels: torch.Tensor, positions: str = "labels",
                      tokens: float | None = None) -> torch.Tensor:
    """`labels`: mean over valid next-token positions. `all` (the PDU code): every one of the B·T rows."""
    if positions == "all":
        return logit_margin(logits).mean()
    return masked_mean(logit_margin(logits[:, :-1]), valid(labels), tokens)
