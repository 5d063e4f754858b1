"""The one way a cache key or identity is made from its material: SHA-256 of canonical JSON (sorted keys;
anything JSON cannot hold, such as paths, by its str)."""
import hashlib
import json


def to_plain(cfg) -> dict:
    """A config node (or a mapping) as plain, resolved data for key material."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def key_of(material) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]
