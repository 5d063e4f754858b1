"""Repetition and diversity of generated text on whitespace words (spec §3.6, A14).

Two families that are easy to confuse, both kept and named:
- SimCTG (Su et al. 2022): corpus-level rep-n in percent over all texts, diversity = prod_{n=2..4}
  (1 - rep-n/100). The canonical loop (`while end_idx < len(tokens)`) drops each text's last n-gram;
  `compat=True` reproduces that off-by-one, `compat=False` counts every n-gram.
- EMSO / DI lineage: per text Rep_n = 1 - |set(ngrams)| / |ngrams| and Div_n = |set(ngrams)| / #words
  (a distinct-n ratio, not SimCTG's diversity), averaged over texts that have n-grams.
"""


def word_ngrams(text: str, n: int, compat: bool = False) -> list[tuple[str, ...]]:
    words = text.strip().split()
    count = len(words) - n + (0 if compat else 1)
    return [tuple(words[i:i + n]) for i in range(max(count, 0))]


def simctg_rep(texts: list[str], n: int, compat: bool = True) -> float:
    unique = total = 0
    for text in texts:
        grams = word_ngrams(text, n, compat)
        unique += len(set(grams))
        total += len(grams)
    return 100.0 * (1.0 - unique / total) if total else 0.0


def simctg_diversity(texts: list[str], compat: bool = True) -> float:
    out = 1.0
    for n in (2, 3, 4):
        out *= 1.0 - simctg_rep(texts, n, compat) / 100.0
    return out


def emso_rep(text: str, n: int) -> float | None:
    grams = word_ngrams(text, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else None


def emso_distinct(text: str, n: int) -> float | None:
    grams = word_ngrams(text, n)
    return len(set(grams)) / len(text.split()) if grams else None
