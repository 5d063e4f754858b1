"""Loaded by a test subprocess through PYTHONPATH: the modules named in UNLEARN_TEST_HIDE_MODULES look not
installed, to normal imports (a meta-path finder) and to plugin scanners that list packages with pkgutil
(Hydra finds its launcher plugins that way)."""
import os
import pkgutil
import sys

HIDDEN = tuple(n for n in os.environ.get("UNLEARN_TEST_HIDE_MODULES", "").split(",") if n)


def _hidden(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HIDDEN)


class _Hide:
    def find_spec(self, name, path=None, target=None):
        if _hidden(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if HIDDEN:
    sys.meta_path.insert(0, _Hide())
    _walk = pkgutil.walk_packages

    def walk_packages(path=None, prefix="", onerror=None):
        return (m for m in _walk(path, prefix, onerror) if not _hidden(m.name))

    pkgutil.walk_packages = walk_packages
