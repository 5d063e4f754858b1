"""Hub models and data sets a protocol needs (`requires:` in `conf/size/paper_*.yaml`), checked before any
model loads or trains: at paper size, finding out after hours of unlearning that GPT-J-6B cannot be
downloaded wastes the run. Online, the loaders download what is missing; offline, a copy must be in the
Hugging Face cache, or the run stops with one line naming the hub id and the fix."""
from pathlib import Path

from unlearn.errors import ConfigError
from unlearn.models.hub import hub_offline


def model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return Path(repo_id).expanduser().is_dir() or isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def dataset_cached(repo_id: str) -> bool:
    """In the hub cache (datasets >= 2.16 keeps downloaded files there) or the datasets cache."""
    from datasets import config as ds_config
    from huggingface_hub import constants

    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "snapshots"
    processed = Path(ds_config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")
    return (hub.is_dir() and any(hub.iterdir())) or processed.is_dir()


def missing(requires) -> list[str]:
    models = [f"model {m}" for m in requires.get("models") or [] if not model_cached(m)]
    sets = [f"data set {d}" for d in requires.get("datasets") or [] if not dataset_cached(d)]
    return models + sets


def check_requirements(cfg) -> None:
    size = cfg.get("size") or {}
    if size.get("name", "demo") != "demo" and not size.get("applied"):
        conf = Path(__file__).resolve().parents[2] / "conf"
        protocols = [p.stem[len(size.name) + 1:] for p in sorted((conf / "protocol").glob(f"{size.name}_*.yaml"))]
        protocols = [p for p in protocols if (conf / "data" / f"{p}.yaml").is_file()]
        raise ConfigError(f"size={size.name} has no paper sizes for data={cfg.data.name} (no conf/protocol/{size.name}_{cfg.data.name}.yaml); "
                          f"sizes exist for data={', '.join(protocols)}")
    requires = cfg.get("requires")
    if not requires:
        return
    absent = missing(requires)
    if absent and hub_offline():
        size = (cfg.get("size") or {}).get("name", "this protocol")
        raise ConfigError(
            f"size={size} needs {', '.join(absent)} from the Hugging Face hub, which is offline here and has no cached copy; "
            "download it where there is network (huggingface-cli download <id>, with --repo-type dataset for data sets) "
            "and copy the cache over, or run the demo sizes (size=demo)")
