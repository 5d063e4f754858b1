"""`eval.attacks`: names of conf/attack/*.yaml, or {name: ..., key: value} to override a file's keys
(`'eval.attacks=[int4,{name:relearn_forget,steps:[0,10]}]'`). Resolved and checked before any model loads."""
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from unlearn.errors import require

CONF = Path(__file__).resolve().parents[2] / "conf" / "attack"
# Metrics where a higher value means more is remembered: the worst case over prompt variants is the max.
LEAK_METRICS = ("ma", "exact_match", "el")


def available() -> list[str]:
    return sorted(p.stem for p in CONF.glob("*.yaml"))


def resolve(entry) -> dict:
    if isinstance(entry, str):
        name, overrides = entry, {}
    else:
        entry = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else dict(entry)
        require("name" in entry, f"eval.attacks entry {entry} has no name; use a file name from conf/attack/ ({available()})")
        name, overrides = entry.pop("name"), entry
    path = CONF / f"{name}.yaml"
    require(path.is_file(), f"eval.attacks: attack {name!r} is unknown; use one of {available()} (files in conf/attack/)")
    defaults = OmegaConf.load(path)
    unknown = set(overrides) - set(defaults)
    require(not unknown, f"eval.attacks: attack {name!r} has no key(s) {sorted(unknown)}; see conf/attack/{name}.yaml")
    spec = OmegaConf.to_container(OmegaConf.merge(defaults, overrides), resolve=True)
    return {"name": name, **spec}


def resolve_all(eval_cfg) -> list[dict]:
    specs = [resolve(e) for e in (eval_cfg.get("attacks") or [])]
    names = [s["name"] for s in specs]
    require(len(set(names)) == len(names), f"eval.attacks names an attack twice ({names}); copy the file under a new name to run two settings")
    return specs
