"""The default table's EL preset (jang_stride4) is Jang's EL_n over every 4th prefix: the same average,
never a rescaled sum. Over every prefix it equals the jang preset exactly."""
import pytest

from unlearn.generation import teacher_forced
from unlearn.metrics.memorization import EL_PRESETS, extraction_likelihood, prefix_continuations, wanted_prefixes


def test_stride_preset_is_jangs_average_over_the_prefixes_it_decodes(tiny_setup):
    model, tok, seqs = tiny_setup["target"], tiny_setup["tokenizer"], tiny_setup["encoded"]["forget"].input_ids
    tf = teacher_forced(model, seqs, tok.pad_token_id)
    every = prefix_continuations(model, tf, seqs, tok.pad_token_id, 16)
    jang = [extraction_likelihood(c, s, 3, aggregate="jang") for c, s in zip(every, seqs)]
    assert sum(jang) / len(jang) > 0.5  # a memorized target: the comparison below is not 0 == 0
    assert [extraction_likelihood(c, s, 3, aggregate="prefix_mean") for c, s in zip(every, seqs)] == pytest.approx(jang, abs=1e-12)

    stride = EL_PRESETS["jang_stride4"]["positions"]
    strided = prefix_continuations(model, tf, seqs, tok.pad_token_id, 16, wanted_prefixes(seqs, [1] * len(seqs), stride))
    for conts, full, seq in zip(strided, every, seqs):
        assert sorted(conts) == list(range(stride, len(seq), stride))
        used = [i for i in conts if len(seq) - i >= 3]
        expected = sum(extraction_likelihood({i: full[i]}, seq, 3, aggregate="items")[0] for i in used) / len(used)
        assert extraction_likelihood(conts, seq, 3, aggregate="prefix_mean") == pytest.approx(expected)
