from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import EncodedSplit, encode_split
from unlearn.data.records import Record, Splits

__all__ = ["Collator", "EncodedSplit", "Record", "SequenceDataset", "Splits", "encode_split"]
