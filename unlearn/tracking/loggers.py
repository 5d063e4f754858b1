"""Experiment loggers: CSV (default) and Weights & Biases, offline by itself when there is no API key."""
import os
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from omegaconf import OmegaConf

from unlearn.errors import ConfigError


def wandb_has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def build_logger(cfg, run_dir: Path, run_name: str, resolved_config: dict, group: str | None = None,
                 tags: list[str] | None = None):
    """`group`/`tags` come from the sweep (one W&B run per job, grouped by sweep); the config's own win."""
    if cfg.name == "csv":
        return CSVLogger(save_dir=str(run_dir), name="logs", version="")
    if cfg.name == "wandb":
        mode = cfg.get("mode") or ("online" if wandb_has_key() else "offline")
        logger = WandbLogger(
            project=cfg.project,
            entity=cfg.get("entity"),
            group=cfg.get("group") or group,
            tags=list(cfg.get("tags") or []) + list(tags or []),
            name=run_name,
            save_dir=str(run_dir),
            offline=mode == "offline",
            config=resolved_config,
        )
        return logger
    raise ConfigError(f"logger {cfg.name!r} is unknown; use csv or wandb")


def log_final(logger, records: list[dict], extra: dict | None = None) -> None:
    """Final metrics as `model/split/metric` keys (W&B summary; a CSV row for the CSV logger)."""
    flat = {f"final/{r['model']}/{r['split']}/{r['metric']}": r["value"] for r in records if r.get("value") is not None}
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        run.summary.update(flat)
        if extra:
            run.summary.update(extra)
        logger.experiment.log(flat)
        from unlearn.tracking.wandb_tables import log_tables

        log_tables(run, records, (extra or {}).get("strength"))
    else:
        logger.log_metrics(flat)
        logger.save()


def to_container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)
