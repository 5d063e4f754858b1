"""Token means over the whole optimizer step, however the step is split into processes and micro-batches.

Every method's loss terms are token means (the HF convention). Taken per micro-batch, a step split over W
processes and A accumulation steps weighs each micro-batch's tokens by one over its own token count, so records
of unequal length (TOFU answers) train differently on 1 process, on 2, and with accumulation: OpenUnlearning's
issue #144. Here a term's denominator is the token count of the whole optimizer step divided by W·A: DDP's
gradient average (1/W) and Lightning's accumulation scaling (1/A) then make the step's gradient exactly that of
one token mean over the effective batch. On one process without accumulation the step is the micro-batch and
the denominator its own count, so those runs are unchanged.

The step's records are known without communication: every rank draws the same sampler list (methods/sampling.py,
padded to a multiple of W the way DistributedSampler pads), and optimizer step s of an epoch covers positions
[s·A·W·b, (s+1)·A·W·b) of it. A record's token count does not depend on the batch it is padded into for any
mask that leaves padding out; the one mask that counts padding (`all_incl_pad`) stays per micro-batch, as do the
reference codes' `positions=all` variants that average over every B·T row.
"""
import math

from unlearn.methods.positions import answer_labels, position_mask

# Masks over shifted positions ([B, T-1]) a loss term averages over, by name.
MASKS = {
    "labels": lambda batch: batch["labels"][:, 1:] != -100,
    "answer_labels": lambda batch: answer_labels(batch)[:, 1:] != -100,
    "answer_only": lambda batch: position_mask(batch, "answer_only"),
    "all_nonpad": lambda batch: position_mask(batch, "all_nonpad"),
}


def padded(order: list[int], world: int) -> list[int]:
    """The list DistributedSampler(shuffle=False) shards: repeated from its start up to a multiple of `world`."""
    total = math.ceil(len(order) / world) * world
    return (order * math.ceil(total / max(len(order), 1)))[:total]


class TokenWindow:
    """Per-record token counts (memoized) and the optimizer step's total for a data key and mask."""

    def __init__(self):
        self._counts: dict[tuple[str, str, int], int] = {}

    def _count(self, module, key: str, mask: str, item: int) -> int:
        memo = (key, mask, item)
        if memo not in self._counts:
            batch = module.collate_fn(key)([module.datasets[key][item]])
            self._counts[memo] = int(MASKS[mask](batch).sum())
        return self._counts[memo]

    def denominator(self, module, key: str, mask: str = "labels") -> float | None:
        """The step's token count / (W·A) for micro-batch `module.batch_index`; None where the micro-batch's own
        count is the right one (one process without accumulation, a padding-counting mask, outside a fit)."""
        trainer = module._trainer
        sampler = module.samplers.get(key)
        if trainer is None or mask not in MASKS or sampler is None or not sampler.last:
            return None
        world, accumulate = trainer.world_size, trainer.accumulate_grad_batches
        if world == 1 and accumulate == 1:
            return None
        span = module.cfg.batch_size * world * accumulate
        step = module.batch_index // accumulate
        window = padded(sampler.last, world)[step * span:(step + 1) * span]
        return max(sum(self._count(module, key, mask, i) for i in window), 1) / (world * accumulate)
