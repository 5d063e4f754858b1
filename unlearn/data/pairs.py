"""Two aligned encodings of the same items, batched together: a retain question with its true answer
and with a refusal (IDK+AP's answer preservation compares the two)."""
from torch.utils.data import Dataset

from unlearn.data.collate import Collator, SequenceDataset


class PairedSequences(Dataset):
    def __init__(self, sides: dict[str, SequenceDataset]):
        lengths = {name: len(ds) for name, ds in sides.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"paired datasets must be aligned, got lengths {lengths}")
        self.sides = sides

    def __len__(self) -> int:
        return len(next(iter(self.sides.values())))

    def __getitem__(self, i: int) -> dict:
        return {name: ds[i] for name, ds in self.sides.items()}


class PairCollator:
    """Collates each side with the same collator: {"true": batch, "idk": batch}, rows aligned."""

    def __init__(self, collator: Collator):
        self.collator = collator

    def __call__(self, items: list[dict]) -> dict:
        return {name: self.collator([it[name] for it in items]) for name in items[0]}
