"""A hash of the source files that build a cached artifact, for its cache key.

A cache keyed only by its inputs outlives the code that filled it: after an edit to the fine-tune, the
decoder or a metric, an old memorized target or an old number would stand in for what today's code
builds. Every cache key therefore includes `code_hash(<the files that build it>)`.
"""
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the unlearn package

# What each cached artifact is built by (paths relative to the package; a folder means every .py below it).
MODEL_LOADING = ("models", "data/encode.py", "data/records.py", "data/synthetic.py", "data/sources.py")
FINE_TUNE = ("methods/base.py", "methods/method.py", "methods/finetune.py", "methods/losses.py", "methods/sampling.py",
             "methods/callbacks.py", "data/collate.py", "stages/trainer.py", "stages/memorize.py", "seeding.py",
             "generation/forward.py", "metrics/memorization.py")
MEMORIZED = MODEL_LOADING + FINE_TUNE                                  # target, oracle, TA/CD's memorized model
BASE_SAMPLES = MODEL_LOADING + ("generation", "data/utility.py", "data/prompts.py")
METRICS = ("metrics", "generation", "data", "stages/evaluate.py")       # evaluation records of fixed models
DEQUANTIZED = ("models/load.py",)                                      # the bundled GGUF as float safetensors
MEMSINKS_STANDARD = MODEL_LOADING + ("memsinks", "stages/trainer.py", "seeding.py")  # MemSinks' shared standard model
MAUVE_FEATURES = ("metrics/mauve_score.py", "metrics/aux_models.py")    # reference-side MAUVE features
PACKAGE_CODE = (".",)                                                  # a run's identity: all of the package
# Records of an attacked target or oracle: the model it starts from, the attack (quantization, perturbed
# prompts, relearning with the fine-tune's loss and trainer) and the metrics that measure it.
ATTACKED = MEMORIZED + METRICS + ("attacks",)


def source_files(paths: tuple[str, ...]) -> list[Path]:
    """The files `paths` name (a folder: every .py below it), sorted, each once."""
    files = set()
    for rel in paths:
        path = PACKAGE / rel
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return sorted(files)


@functools.cache
def code_hash(paths: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for path in source_files(paths):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]
