"""The sampler that pairs every forget batch with a random retain batch, correctly under DDP."""
import torch
from torch.utils.data import Sampler


class PairedRandomSampler(Sampler[int]):
    """`num_samples` random indices into a set of `size` items, drawn with replacement.

    One pass over the forget set is the epoch, so `num_samples` is the forget set's size and the retain
    loader never drives the epoch length. Every rank draws the *same* list (same seed, same number of
    passes). Under DDP Lightning wraps this sampler in its DistributedSamplerWrapper, which gives rank r
    positions r, r+W, r+2W, ... of that list, so the ranks draw different retain items and each rank
    gets as many as it has forget items.

    Not a RandomSampler on purpose: Lightning *replaces* a RandomSampler by a DistributedSampler over
    the whole retain set, dropping `num_samples`; a retain set larger than the forget set then makes
    the epoch one pass over the retain set (tests/test_ddp.py shows both).
    """

    def __init__(self, size: int, num_samples: int, seed: int):
        self.size = size
        self.num_samples = num_samples
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        return iter(torch.randint(self.size, (self.num_samples,), generator=self.generator).tolist())
