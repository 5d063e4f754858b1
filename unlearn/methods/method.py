"""What every method declares on its class, so the pipeline can check a config and prepare the right
inputs (retain data, a memorized model, QA refusals) before any model is loaded.

Training methods are Lightning modules (`base.UnlearningModule`); methods that compute the unlearned
model instead of training it (TA, CD) are `training_free.TrainingFreeMethod`. Both carry these traits.
"""
from unlearn.errors import require


class Method:
    name = "base"
    trains = True            # False: `build()` returns the unlearned model, no optimizer runs
    needs_retain = False     # trains on a retain set: data.n_retain must be >= 1
    needs_reference = False  # a frozen copy of the target (KL's reference, DI's teacher)
    needs_memorized = False  # the target fine-tuned further on the forget set (TA, CD): method.memorized is its recipe
    needs_qa = False         # question/answer records (IDK+AP writes refusals to the questions)
    fsdp_refusal: str | None = None  # why it cannot train under FSDP (trainer=fsdp); None: it can

    @classmethod
    def validate_config(cls, cfg) -> None:
        """Raise ConfigError for values that cannot work. Runs before anything is loaded."""
        if cls.needs_memorized:
            recipe = cfg.get("memorized")
            require(recipe is not None, f"method {cls.name} needs method.memorized (epochs, lr, batch_size of the forget fine-tune)")
            require(recipe.epochs >= 1, f"method.memorized.epochs must be >= 1 (got {recipe.epochs})")
            require(recipe.lr > 0, f"method.memorized.lr must be > 0 (got {recipe.lr})")
            require(recipe.batch_size >= 1, f"method.memorized.batch_size must be >= 1 (got {recipe.batch_size})")

    @classmethod
    def validate_for_model(cls, cfg, model_config) -> None:
        """Checks that need the architecture (an HF config, read without weights); skipped when unknown."""

    @classmethod
    def training_records(cls, splits, cfg) -> dict[str, list]:
        """The record lists the method trains on, by dataset name (see `data_keys`)."""
        return {"forget": splits.forget, "retain": splits.retain}


def require_choice(cfg, key: str, choices: tuple[str, ...]) -> None:
    require(cfg.get(key) in choices, f"method.{key}={cfg.get(key)!r}; use one of {choices}")


def require_at_least(cfg, key: str, low: float, strict: bool = False) -> None:
    value = cfg.get(key)
    ok = value is not None and (value > low if strict else value >= low)
    require(ok, f"method.{key} must be {'>' if strict else '>='} {low} (got {value})")
