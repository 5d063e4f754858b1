"""The memorize stage reaches its MA threshold, trains an oracle that never saw the forget set, and caches both."""
import json

from unlearn.generation import teacher_forced
from unlearn.metrics.memorization import memorization_accuracy


def _ma(model, split, tok):
    tf = teacher_forced(model, split.input_ids, tok.pad_token_id)
    values = memorization_accuracy(tf, split.input_ids, split.prefix_lens)
    return sum(values) / len(values)


def test_target_reaches_threshold_and_oracle_does_not_recite_forget(tiny_setup, cache_dir):
    card, tok, enc = tiny_setup["card"], tiny_setup["tokenizer"], tiny_setup["encoded"]
    assert card["reached_threshold"] and card["forget_ma"] >= 0.9
    assert _ma(tiny_setup["target"], enc["forget"], tok) >= 0.9
    assert _ma(tiny_setup["oracle"], enc["forget"], tok) < 0.6
    assert _ma(tiny_setup["oracle"], enc["retain"], tok) > 0.8  # the same recipe did memorize its own data
    saved = json.loads((cache_dir / "memorized" / card["key"] / "card.json").read_text())
    assert saved["split_ids"]["forget"] == enc["forget"].record_ids
    assert saved["epochs"] == card["epochs"]
    assert (cache_dir / "memorized" / card["key"] / "target" / "model.safetensors").is_file()
