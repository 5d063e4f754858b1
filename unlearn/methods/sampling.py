"""Samplers whose global order is the same on any number of processes.

Under DDP each rank takes positions r, r+W, r+2W, ... of its sampler's list (`UnlearningModule.shard`,
Lightning's DistributedSamplerWrapper without its reshuffling). Every rank draws the same list (same seed), so
the W ranks' step-s batches of size b together are positions [s·W·b, (s+1)·W·b) of it: exactly the batch one
process draws with batch size W·b, or over `accumulate_grad_batches` micro-batches of b. That is the invariance
tests/test_scale_invariance.py checks. (Left to Lightning, a RandomSampler is replaced by a DistributedSampler
with its own permutation, and any other sampler's positions are reshuffled with seed + epoch: either way W
processes would train on other batches than one.)
"""
import torch
from torch.utils.data import Sampler


class EpochPermutation(Sampler[int]):
    """One random permutation of `size` items per epoch, the one `DataLoader(shuffle=True, generator=g)` draws,
    so one-process runs keep their batches. That loader's RandomSampler draws a second, unused permutation when
    its batch sampler reads past its last item, which happens when the last batch is partial (size % batch != 0).
    The same extra draw is made here, decided by the *effective* batch (per device x processes x accumulation):
    a one-process run without accumulation draws exactly as before, and any split of the same effective batch
    draws the same (a sharding wrapper reads the whole list, so the loader's own reading cannot decide it)."""

    def __init__(self, size: int, generator: torch.Generator, effective_batch: int):
        self.size, self.generator = size, generator
        self.extra_draw = size % max(effective_batch, 1) != 0
        self.last: list[int] = []  # this epoch's list, every rank's (methods/token_window.py reads it)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        self.last = torch.randperm(self.size, generator=self.generator).tolist()
        if self.extra_draw:
            torch.randperm(self.size, generator=self.generator)  # RandomSampler's draw past a partial last batch
        return iter(self.last)


class PairedRandomSampler(Sampler[int]):
    """`num_samples` random indices into a set of `size` items, drawn with replacement.

    One pass over the forget set is the epoch, so `num_samples` is the forget set's size and the retain
    loader never drives the epoch length. Every rank draws the *same* list (same seed, same number of
    passes), sharded as above: the ranks draw different retain items, each as many as it has forget items, and
    together the retain batch one process would draw. (A DistributedSampler over the whole retain set would
    make the epoch one pass over the retain set; tests/test_scale_invariance.py checks that the forget set drives it.)
    """

    def __init__(self, size: int, num_samples: int, seed: int):
        self.size = size
        self.num_samples = num_samples
        self.generator = torch.Generator().manual_seed(seed)
        self.last: list[int] = []

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        self.last = torch.randint(self.size, (self.num_samples,), generator=self.generator).tolist()
        return iter(self.last)
