"""Utility text: what perplexity and early stopping are measured on, never trained on.

`base_samples` draws it from the original model itself (nucleus sampling from neutral prompts, fixed
seed) so the default run needs no download; `wikitext` reads WikiText-2 (shared folder or hub).
"""
import json
from pathlib import Path

from unlearn.storage.code_hash import BASE_SAMPLES, code_hash
from unlearn.storage.keys import key_of
from unlearn.data.prompts import PROMPTS
from unlearn.data.sources import wikitext_texts
from unlearn.errors import ConfigError
from unlearn.generation import SamplingConfig, decode
from unlearn.storage.results import write_json


def base_model_samples(model, tokenizer, n: int, max_new_tokens: int, seed: int, cache_dir: Path, cache_tag: str,
                       prompt_set: list[str] = PROMPTS) -> list[str]:
    # The code hash: an edited sampler or decoder must not hand back what its old version drew.
    key = key_of([cache_tag, n, max_new_tokens, seed, prompt_set, code_hash(BASE_SAMPLES)])
    path = Path(cache_dir) / "utility" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    prompts = [prompt_set[i % len(prompt_set)] for i in range(n)]
    ids = [tokenizer.encode(p, add_special_tokens=False) for p in prompts]
    outs = decode(model, ids, max_new_tokens, tokenizer.pad_token_id, batch_size=32, sampling=SamplingConfig(), seed=seed,
                  eos_id=tokenizer.eos_token_id)
    texts = [p + tokenizer.decode(o) for p, o in zip(prompts, outs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, texts)  # atomic: a job starting beside this one never reads half a file
    return texts


def utility_texts(cfg, root, model, tokenizer, seed: int, cache_dir: Path, cache_tag: str) -> tuple[list[str], list[str]]:
    """Returns (utility, validation) texts: disjoint, so early stopping never sees the reported set."""
    source = cfg.source
    n, n_val = cfg.n, cfg.validation_n
    if source == "none":
        return [], []
    if source == "base_samples":
        texts = base_model_samples(model, tokenizer, n + n_val, cfg.max_new_tokens, seed, cache_dir, cache_tag)
    elif source == "wikitext":
        texts = wikitext_texts(root, n + n_val, 0, cfg.get("max_chars", 600))
    else:
        raise ConfigError(f"data.utility.source={source!r}; use base_samples, wikitext or none")
    return texts[:n], texts[n:]
