"""Paragraphs GPT-Neo-125M recites (Stoehr et al. 2024, "Localizing Paragraph Memorization"), from
`<data root>/paragraph_memorization_gpt_neo_125m`: GPT-2 token ids, 50-token prefix + 50-token suffix.

`50_50_preds` holds the 442 paragraphs whose whole suffix GPT-Neo-125M reproduces greedily: the natural
forget set for `model=gpt-neo-125m memorize=none`. `30_49_preds` / `11_29_preds` are partly memorized
(30-49 and 11-29 suffix tokens): contrast sets. Each split names its file; splits that share a file take
consecutive rows, so they never overlap.
"""
from pathlib import Path

import numpy as np

from unlearn.data.records import Record
from unlearn.errors import UnlearnError

FOLDER = "paragraph_memorization_gpt_neo_125m"
PREFIX_TOKENS = 50


def paragraph_records(cfg, root: Path, gpt2_tokenizer) -> list[Record]:
    """forget + retain + holdout records in that order, as `assign_splits` cuts them (no shuffle)."""
    if cfg.get("shuffle"):
        raise UnlearnError("data=paragraph_memorization takes rows in file order per split; set data.shuffle=false")
    folder = root / FOLDER
    tok = gpt2_tokenizer(root)
    arrays, next_row, records = {}, {}, []
    for split in ("forget", "retain", "holdout"):
        name, n = cfg.files[split], cfg[f"n_{split}"]
        if name not in arrays:
            path = folder / f"{name}.npy"
            if not path.is_file():
                raise UnlearnError(f"missing data file {path}; see {FOLDER}/README.md in the shared data (files: 50_50_preds, 30_49_preds, 11_29_preds)")
            arrays[name] = np.load(path).astype(np.int64)
        start = next_row.get(name, 0)
        if start + n > len(arrays[name]):
            raise UnlearnError(f"data asks for {n} {split} rows from {name} (rows {start}..), which has {len(arrays[name])}; "
                               f"lower data.n_{split}")
        for i in range(start, start + n):
            row = arrays[name][i].tolist()
            records.append(Record(id=f"{name}-{i:04d}", text=tok.decode(row), prefix=tok.decode(row[:PREFIX_TOKENS]),
                                  source_ids=tuple(row), source_prefix_len=PREFIX_TOKENS))
        next_row[name] = start + n
    return records
