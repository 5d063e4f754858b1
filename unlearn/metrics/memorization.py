"""Memorization metrics: MA, exact-match length and EL_n (spec §3.1, §3.2, §3.4).

All of them start from one teacher-forced pass. Greedy decoding is deterministic, so wherever the
teacher-forced argmax at prefix i equals x_{i+1}, the greedy continuation from prefix i is x_{i+1}
followed by the continuation from prefix i+1: only mismatch positions need fresh decoding (on
memorized text they are rare). This is exact, not an approximation, and it is what makes EL_n with
every prefix affordable. The fresh decodes start from a causal pass's KV cache instead of prefilling
each prefix again (unlearn/generation/engine.py).
"""
from collections import Counter

from unlearn.generation.engine import decode_branches
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


def wanted_prefixes(seqs, prefix_lens, positions) -> list[list[int]]:
    """Prefix lengths to continue, per sequence: "all" = 1..T-1 (Jang), "prefix" = the record's own
    prefix, an int w = w, 2w, ... < T (the DI/EMSO window of 40)."""
    if positions == "all":
        return [list(range(1, len(s))) for s in seqs]
    if positions == "prefix":
        return [[p] for p in prefix_lens]
    if isinstance(positions, int) and positions >= 1:
        return [list(range(positions, len(s), positions)) for s in seqs]
    raise ValueError(f"positions={positions!r}; use 'all', 'prefix' or a positive int stride")


def prefix_continuations(model, tf: TeacherForced, seqs, pad_id: int, batch_size: int, wanted=None) -> list[dict[int, list[int]]]:
    """For every sequence, the greedy continuation of each prefix length i (to the sequence's full length).

    `wanted[s]` lists the prefix lengths to return for sequence s (default every i in 1..T-1). From
    prefix i the continuation follows the true tokens up to the first mismatch position j >= i, then
    is the fresh greedy decode from j: one decode per distinct j, none when the chain reaches the end.
    """
    wanted = [sorted(w) for w in wanted] if wanted is not None else [list(range(1, len(s))) for s in seqs]
    first_miss = []  # per sequence: first_miss[i] = smallest j >= i whose greedy token misses (T if none)
    fresh_keys = set()
    for s_idx, (argmax, seq) in enumerate(zip(tf.argmax, seqs)):
        flags, T = correct_flags(argmax, seq), len(seq)
        nxt, j = [T] * (T + 1), T
        for i in range(T - 1, 0, -1):
            if not flags[i - 1]:
                j = i
            nxt[i] = j
        first_miss.append(nxt)
        fresh_keys.update((s_idx, nxt[i]) for i in wanted[s_idx] if nxt[i] < T)
    # Fresh decodes start from a causal pass's KV cache, batched across sequences (generation/engine.py).
    fresh = decode_branches(model, seqs, sorted(fresh_keys), pad_id, batch_size=batch_size)
    results = []
    for s_idx, seq in enumerate(seqs):
        T = len(seq)
        conts = {}
        for i in wanted[s_idx]:
            j = first_miss[s_idx][i]
            conts[i] = seq[i:j] + (fresh[(s_idx, j)] if j < T else [])
        results.append(conts)
    return results


def window_accuracy(tf: TeacherForced, seqs, stride: int) -> list[float]:
    """DI/EMSO-lineage MA: 0/1 for the first continuation token after each window prefix (w, 2w, ...),
    one item per (sequence, prefix)."""
    return [float(argmax[i - 1] == seq[i]) for argmax, seq in zip(tf.argmax, seqs) for i in range(stride, len(seq), stride)]


def matching_prefix_length(generated: list[int], reference: list[int]) -> int:
    """Tokens that agree before the first mismatch (EMatch, spec §3.4)."""
    n = 0
    for a, b in zip(generated, reference):
        if a != b:
            break
        n += 1
    return n


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
    if aggregate == "prefix_mean":
        # Jang's average taken over the prefixes decoded: with every prefix (1..T-n have >= n target
        # tokens) it is exactly the jang value; with a stride, the same average over every s-th prefix.
        return sum(overlaps) / len(overlaps) if overlaps else 0.0
    return overlaps


EL_PRESETS = {
    "jang": dict(positions="all", numerator="multiset", denominator="target", aggregate="jang"),
    "emso_compat": dict(positions=40, numerator="set", denominator="generated", aggregate="items"),
    # Jang's counting over every 4th prefix (4, 8, ...): the default table's EL, ~4x fewer greedy decodes
    # on a model that does not recite (the original, the oracle). Exact decoding, fewer prefixes.
    "jang_stride4": dict(positions=4, numerator="multiset", denominator="target", aggregate="prefix_mean"),
}
