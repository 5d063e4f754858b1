"""MA, exact-match and EL_n: hand-computed toys, and agreement with plain token-by-token greedy decoding."""
import pytest
import torch

from unlearn.generation import decode, teacher_forced
from unlearn.generation.forward import TeacherForced
from unlearn.metrics.memorization import (
    exact_match_lengths,
    extraction_likelihood,
    memorization_accuracy,
    prefix_continuations,
)


def test_ma_and_exact_match_on_a_hand_built_case():
    seq = [5, 6, 7, 8, 9, 10]
    # predictions of tokens 1..5: hit, hit, miss, hit, hit
    tf = TeacherForced(argmax=[[6, 7, 0, 9, 10]], nll=[[0.0] * 5])
    assert memorization_accuracy(tf, [seq], [2], "all") == [pytest.approx(4 / 5)]
    assert memorization_accuracy(tf, [seq], [2], "continuation") == [pytest.approx(3 / 4)]
    assert exact_match_lengths(tf, [seq], [1]) == [2]  # tokens 1, 2 match, token 3 does not
    assert exact_match_lengths(tf, [seq], [3]) == [0]  # the first continuation token already misses
    assert exact_match_lengths(tf, [seq], [4]) == [2]  # matches after the first mismatch count from a later prefix


def test_el_jang_hand_computed_on_a_ten_token_toy():
    seq = list(range(10))  # tokens 0..9, T = 10, n = 2
    conts = {i: seq[i:] for i in range(1, 10)}  # a perfect copier
    assert extraction_likelihood(conts, seq, 2) == pytest.approx(1.0)
    wrong = {i: [99] * (10 - i) for i in range(1, 10)}
    assert extraction_likelihood(wrong, seq, 2) == 0.0
    # copier that gets only the first continuation token right, then repeats 99
    half = {i: [seq[i]] + [99] * (9 - i) for i in range(1, 10)}
    # no generated bigram (x_i, 99) or (99, 99) is a target bigram -> 0
    assert extraction_likelihood(half, seq, 2) == 0.0
    # continuation from every prefix = the next two true tokens then junk: one hit bigram per prefix
    two = {i: seq[i:i + 2] + [99] * (8 - i) for i in range(1, 10)}
    # prefix i (1..8) has 9-i target bigrams; one hit each -> sum_i 1/(9-i) over i=1..8, / (T-n=8)
    expected = sum(1 / (9 - i) for i in range(1, 9)) / 8
    assert extraction_likelihood(two, seq, 2) == pytest.approx(expected)


def test_el_emso_compat_uses_sets_and_the_generated_denominator():
    seq = list(range(10))
    conts = {4: [4, 5, 4, 5, 4, 5], 8: [8, 9]}
    items = extraction_likelihood(conts, seq, 2, numerator="set", denominator="generated", aggregate="items")
    # prefix 4: gen bigrams {(4,5),(5,4)}; target has (4,5) only -> 1/2.  prefix 8: {(8,9)} -> 1/1
    assert items == [pytest.approx(0.5), pytest.approx(1.0)]


def test_single_pass_ma_equals_token_by_token_greedy(tiny_setup):
    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    seqs = tiny_setup["encoded"]["forget"].input_ids[:3] + tiny_setup["encoded"]["holdout"].input_ids[:2]
    tf = teacher_forced(model, seqs, tok.pad_token_id)
    for seq, argmax in zip(seqs, tf.argmax):
        prompts = [seq[:i] for i in range(1, len(seq))]
        one_step = decode(model, prompts, 1, tok.pad_token_id, batch_size=64)
        assert [o[0] for o in one_step] == argmax


def test_reused_prefix_continuations_equal_fresh_greedy_decoding(tiny_setup):
    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    seqs = [tiny_setup["encoded"]["forget"].input_ids[0], tiny_setup["encoded"]["holdout"].input_ids[0]]
    tf = teacher_forced(model, seqs, tok.pad_token_id)
    fast = prefix_continuations(model, tf, seqs, tok.pad_token_id, batch_size=64)
    for seq, conts in zip(seqs, fast):
        prompts = list(range(1, len(seq)))
        naive = decode(model, [seq[:i] for i in prompts], [len(seq) - i for i in prompts], tok.pad_token_id, batch_size=64)
        assert [conts[i] for i in prompts] == naive


def test_memorized_model_scores_high_and_base_model_low(tiny_setup):
    tok = tiny_setup["tokenizer"]
    forget = tiny_setup["encoded"]["forget"]
    ma_target = memorization_accuracy(teacher_forced(tiny_setup["target"], forget.input_ids, tok.pad_token_id), forget.input_ids, forget.prefix_lens)
    ma_base = memorization_accuracy(teacher_forced(tiny_setup["base"], forget.input_ids, tok.pad_token_id), forget.input_ids, forget.prefix_lens)
    assert sum(ma_target) / len(ma_target) >= 0.9
    assert sum(ma_base) / len(ma_base) < 0.1


def test_batched_left_padded_decoding_equals_one_prompt_at_a_time(tiny_setup):
    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    seqs = tiny_setup["encoded"]["holdout"].input_ids[:4]
    prompts = [s[: 3 + 2 * k] for k, s in enumerate(seqs)]
    batched = decode(model, prompts, 12, tok.pad_token_id, batch_size=8)
    single = [decode(model, [p], 12, tok.pad_token_id, batch_size=1)[0] for p in prompts]
    assert batched == single


@pytest.mark.parametrize("positions", ["prefix", 5])
def test_sparse_prefix_continuations_equal_fresh_greedy_decoding(tiny_setup, positions):
    from unlearn.metrics.memorization import wanted_prefixes

    model, tok = tiny_setup["target"], tiny_setup["tokenizer"]
    enc = tiny_setup["encoded"]
    seqs = enc["forget"].input_ids[:2] + enc["holdout"].input_ids[:2]
    prefix_lens = enc["forget"].prefix_lens[:2] + enc["holdout"].prefix_lens[:2]
    wanted = wanted_prefixes(seqs, prefix_lens, positions)
    fast = prefix_continuations(model, teacher_forced(model, seqs, tok.pad_token_id), seqs, tok.pad_token_id, 64, wanted)
    for seq, want, conts in zip(seqs, wanted, fast):
        naive = decode(model, [seq[:i] for i in want], [len(seq) - i for i in want], tok.pad_token_id, batch_size=64)
        assert [conts[i] for i in want] == naive
