"""Memorization metrics: MA, exact-match length and EL_n (spec §3.1, §3.2, §3.4).

All of them start from one teacher-forced pass. Greedy decoding is deterministic, so wherever the
teacher-forced argmax at prefix i equals x_{i+1}, the greedy continuation from prefix i is x_{i+1}
followed by the continuation from prefix i+1: only mismatch positions need fresh decoding (on
memorized text they are rare). This is exact, not an approximation, and it is what makes EL_n with
every prefix affordable.
"""
from collections import Counter

from unlearn.generation import decode
from unlearn.generation.forward import TeacherForced


def correct_flags(tf_argmax: list[int], seq: list[int]) -> list[bool]:
    """flags[i]: the greedy prediction after tokens 0..i equals token i+1."""
    return [a == b for a, b in zip(tf_argmax, seq[1:])]


def memorization_accuracy(tf: TeacherForced, seqs, prefix_lens, positions: str = "all") -> list[float]:
    """Per-sequence MA. `all` = Jang (every next-token position); `continuation` = tokens after the prefix."""
    values = []
    for argmax, seq, p in zip(tf.argmax, seqs, prefix_lens):
        flags = correct_flags(argmax, seq)
        if positions == "continuation":
            flags = flags[p - 1:]
        values.append(sum(flags) / len(flags))
    return values


def exact_match_lengths(tf: TeacherForced, seqs, prefix_lens) -> list[int]:
    """Greedy tokens from the prefix that match the reference before the first mismatch (= a run of
    teacher-forced hits starting at the prefix, by the reuse argument above)."""
    lengths = []
    for argmax, seq, p in zip(tf.argmax, seqs, prefix_lens):
        n = 0
        for hit in correct_flags(argmax, seq)[p - 1:]:
            if not hit:
                break
            n += 1
        lengths.append(n)
    return lengths


def prefix_continuations(model, tf: TeacherForced, seqs, pad_id: int, batch_size: int, prefix_lengths=None) -> list[dict[int, list[int]]]:
    """For every sequence, the greedy continuation of each prefix length i (to the sequence's full length).

    `prefix_lengths(T)` picks which i to return (default every i in 1..T-1)."""
    fresh_prompts, fresh_keys = [], []
    flags_all = [correct_flags(a, s) for a, s in zip(tf.argmax, seqs)]
    wanted = []
    for s_idx, (seq, flags) in enumerate(zip(seqs, flags_all)):
        T = len(seq)
        want = sorted(prefix_lengths(T) if prefix_lengths else range(1, T))
        wanted.append(want)
        # Only mismatch positions need decoding; hits are filled in by the backward pass below.
        for i in range(min(want), T):
            if not flags[i - 1]:
                fresh_prompts.append(seq[:i])
                fresh_keys.append((s_idx, i))
    outs = decode(model, fresh_prompts, [len(seqs[s]) - i for s, i in fresh_keys], pad_id, batch_size=batch_size)
    fresh = dict(zip(fresh_keys, outs))
    results = []
    for s_idx, (seq, flags) in enumerate(zip(seqs, flags_all)):
        T = len(seq)
        cont: dict[int, list[int]] = {}
        tail: list[int] = []
        for i in range(T - 1, min(wanted[s_idx]) - 1, -1):
            tail = [seq[i]] + tail if flags[i - 1] else fresh[(s_idx, i)]
            cont[i] = tail
        results.append({i: cont[i] for i in wanted[s_idx]})
    return results


def _ngrams(tokens: list[int], n: int) -> list[tuple]:
    return [tuple(tokens[k:k + n]) for k in range(len(tokens) - n + 1)]


def extraction_likelihood(
    continuations: dict[int, list[int]],
    seq: list[int],
    n: int,
    numerator: str = "multiset",
    denominator: str = "target",
    aggregate: str = "jang",
) -> float | list[float]:
    """EL_n of one sequence from its prefix continuations.

    jang: sum over prefixes with >= n target tokens of |gen n-grams (with multiplicity) in set(target n-grams)|
    / |target n-grams|, divided by (T - n). emso_compat: a list, one overlap per prefix item, with sets on
    both sides and |set(gen n-grams)| as denominator (the caller averages over items).
    """
    T = len(seq)
    overlaps = []
    for i in sorted(continuations):
        target = _ngrams(seq[i:], n)
        if not target:
            continue
        gen = _ngrams(continuations[i], n)
        target_set = set(target)
        if numerator == "multiset":
            hits = sum(1 for g in gen if g in target_set)
        else:
            hits = len(set(gen) & target_set)
        denom = len(target) if denominator == "target" else len(set(gen))
        overlaps.append(hits / denom if denom else 0.0)
    if aggregate == "jang":
        return sum(overlaps) / (T - n) if T > n else 0.0
    return overlaps


EL_PRESETS = {
    "jang": dict(stride=1, numerator="multiset", denominator="target", aggregate="jang"),
    "emso_compat": dict(stride=40, numerator="set", denominator="generated", aggregate="items"),
}


def prefix_positions(stride: int):
    if stride == 1:
        return None
    return lambda T: [i for i in range(stride, T, stride)]
