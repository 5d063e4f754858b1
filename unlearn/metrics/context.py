"""What metrics share for one model: its encoded splits and memoized passes (teacher-forced, prefix decodes).

Two metrics that need the same pass (MA and exact-match; EL_3 and EL_10) compute it once.
"""
from dataclasses import dataclass, field

from unlearn.data.encode import EncodedSplit
from unlearn.generation.forward import TeacherForced, teacher_forced
from unlearn.metrics.memorization import prefix_continuations


@dataclass
class EvalContext:
    model: object
    tokenizer: object
    splits: dict[str, EncodedSplit]  # record splits: forget, retain, holdout
    texts: dict[str, list[list[int]]]  # plain-text splits, already tokenized: utility, validation
    batch_size: int = 16
    _memo: dict = field(default_factory=dict)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def sequences(self, split: str) -> list[list[int]]:
        return self.splits[split].input_ids if split in self.splits else self.texts[split]

    def teacher_forced(self, split: str) -> TeacherForced:
        key = ("tf", split)
        if key not in self._memo:
            self._memo[key] = teacher_forced(self.model, self.sequences(split), self.pad_id, self.batch_size)
        return self._memo[key]

    def continuations(self, split: str, stride: int, positions) -> list[dict[int, list[int]]]:
        key = ("cont", split, stride)
        if key not in self._memo:
            self._memo[key] = prefix_continuations(
                self.model, self.teacher_forced(split), self.sequences(split), self.pad_id, self.batch_size * 4, positions
            )
        return self._memo[key]
