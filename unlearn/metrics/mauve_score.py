"""MAUVE (Pillutla et al. 2021) via `mauve-text` on precomputed features (spec §3.8).

p = prompt + generation, q = prompt + gold continuation (EMSO/DI). Features come from a configurable
featurizer, since `compute_mauve` on raw text would download gpt2-large:
- `minilm` (offline default), `st:<model>`, `simcse:<model>`: sentence embeddings;
- `lm:<hub id or folder>` (e.g. `lm:gpt2-large`, the paper's): last-layer hidden state of the final
  token, computed with mauve's own `featurize_tokens_from_model`;
- `original_model` / `self` / `role:<name>`: the same from one of the evaluated models.
q is the same for every model of a run, so q features from a fixed featurizer are cached on disk.
"""
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from unlearn.metrics.aux_models import causal_lm, text_encoder
from unlearn.storage.code_hash import MAUVE_FEATURES, code_hash
from unlearn.metrics.context import EvalContext
from unlearn.metrics.generation_sets import wikitext_generations
from unlearn.metrics.registry import MetricSkipped, MetricValue, register

MODEL_FEATURIZERS = ("original_model", "self")


def mauve_from_features(p: np.ndarray, q: np.ndarray, **kwargs):
    import mauve

    return mauve.compute_mauve(p_features=p, q_features=q, device_id=-1, verbose=False, **kwargs)


def _lm_features(model, tokenizer, texts: list[str], max_len: int, batch_size: int = 8) -> np.ndarray:
    from mauve.utils import featurize_tokens_from_model

    toks = [tokenizer.encode(t, return_tensors="pt", truncation=True, max_length=max_len) for t in texts]
    toks = [t if t.shape[-1] else torch.tensor([[tokenizer.eos_token_id]]) for t in toks]
    return featurize_tokens_from_model(model, toks, batch_size).float().numpy()


def _model_featurizer(ctx: EvalContext, spec: str):
    if spec == "original_model":
        return ctx.original
    if spec == "self":
        return ctx
    other = ctx.role(spec[5:])
    if other is None:
        raise MetricSkipped(f"featurizer {spec}: no model with that role is evaluated here")
    return other


def featurize(ctx: EvalContext, spec: str, texts: list[str], max_len: int) -> np.ndarray:
    if spec in MODEL_FEATURIZERS or spec.startswith("role:"):
        other = _model_featurizer(ctx, spec)
        return _lm_features(other.model, other.tokenizer, texts, max_len)
    if spec.startswith("lm:"):
        model, tok = causal_lm(spec[3:])
        return _lm_features(model, tok, texts, max_len)
    return text_encoder(spec).encode(texts)


def cached_features(ctx: EvalContext, spec: str, texts: list[str], max_len: int) -> np.ndarray:
    """Reference-side features on disk (paths.cache_dir/mauve_features), keyed by featurizer and texts.
    Features from an evaluated model stay in memory only (its weights are not part of the key), in
    that model's context, so every model of the run reuses them."""
    key = hashlib.sha256(json.dumps([spec, max_len, texts, code_hash(MAUVE_FEATURES)]).encode()).hexdigest()[:20]
    if spec in MODEL_FEATURIZERS or spec.startswith("role:"):
        return _model_featurizer(ctx, spec).memo(("features", key), lambda: featurize(ctx, spec, texts, max_len))
    if ctx.env.cache_dir is None:
        return featurize(ctx, spec, texts, max_len)
    path = Path(ctx.env.cache_dir).expanduser() / "mauve_features" / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    feats = featurize(ctx, spec, texts, max_len)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(path)
    return feats


@register("mauve", uses=("wikitext",))
def mauve_metric(ctx: EvalContext, split: str = "wikitext", featurizer: str = "minilm", num_buckets: str | int = "auto",
                 kmeans_num_redo: int = 5, kmeans_max_iter: int = 500, seed: int = 25, max_text_length: int = 1024) -> MetricValue:
    gens = wikitext_generations(ctx)
    if len(gens) < 2:
        raise MetricSkipped("MAUVE needs at least 2 generations")

    def compute():
        p = featurize(ctx, featurizer, gens.full_texts(), max_text_length)
        q = cached_features(ctx, featurizer, gens.full_references(), max_text_length)
        out = mauve_from_features(p, q, num_buckets=num_buckets, kmeans_num_redo=kmeans_num_redo,
                                  kmeans_max_iter=kmeans_max_iter, seed=seed)
        featurizer_name = ctx.original.name if featurizer == "original_model" else featurizer
        return MetricValue(float(out.mauve), len(gens), None, {
            "featurizer": featurizer_name, "frontier_integral": float(out.frontier_integral),
            "num_buckets": num_buckets, "generations": gens.key, "source": gens.source})

    return ctx.memo(("mauve", gens.key, featurizer, num_buckets, kmeans_num_redo, kmeans_max_iter, seed, max_text_length), compute)
