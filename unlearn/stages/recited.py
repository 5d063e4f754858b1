"""`data.min_target_ma`: keep only the forget records the target actually recites.

A pretrained model memorizes some sequences of a benchmark and not others (GPT-Neo-125M recites only
part of the extraction challenge); unlearning records it never memorized measures nothing. The filter
scores every forget record with the memorization metric's own code (one teacher-forced pass, MA over
the continuation after the record's prefix: does the target recite what follows?) and keeps records
at or above the threshold. Kept and dropped ids and every score go into results.json.
"""
from unlearn.data.records import Splits
from unlearn.errors import require
from unlearn.generation.forward import teacher_forced
from unlearn.metrics.memorization import memorization_accuracy
from unlearn.ranks import is_main


def keep_recited(splits: Splits, target, forget, pad_id: int, threshold: float, batch_size: int) -> tuple[Splits, dict]:
    """(splits with the forget set filtered, what was kept). `forget` = the forget split encoded for `target`."""
    tf = teacher_forced(target, forget.input_ids, pad_id, batch_size)
    scores = dict(zip(forget.record_ids, memorization_accuracy(tf, forget.input_ids, forget.prefix_lens, "continuation")))
    kept = [rid for rid, ma in scores.items() if ma >= threshold]
    require(kept, f"no forget record reaches MA >= {threshold} on the target (best {max(scores.values()):.3f}); "
            "lower data.min_target_ma or pick records the model memorized")
    filtered = Splits([r for r in splits.forget if r.id in set(kept)], splits.retain, splits.holdout, splits.utility,
                      splits.validation, splits.source_tokenizer)
    info = {"min_target_ma": threshold, "positions": "continuation", "kept": kept,
            "dropped": [rid for rid in scores if rid not in set(kept)], "target_ma": scores}
    if is_main():  # every rank filters (its share of the pass, unlearn/ranks.py); one says so
        print(f"[unlearn] data.min_target_ma={threshold}: kept {len(kept)} of {len(scores)} forget records the target recites")
    return filtered, info
