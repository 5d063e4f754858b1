"""With HF_HUB_OFFLINE=1 nothing reaches for the network: the default pipeline (memorize -> EMSO -> the
default evaluation table) runs on a tiny model in this process with every socket connection and DNS
lookup made to fail, and none is attempted."""
import socket

import pytest

from tests.conftest import FAST_SWEEP, compose

pytestmark = pytest.mark.slow


def test_default_pipeline_makes_no_network_call(tmp_path, monkeypatch):
    assert __import__("os").environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest before huggingface_hub loads
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network blocked by test_offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)

    from unlearn.workflows.run_pipeline import run_pipeline

    cfg = compose(FAST_SWEEP + [f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_dir={tmp_path / 'out'}",
                                "method.max_epochs=1", "threads=1"])
    assert cfg.method.name == "emso" and cfg.eval.name == "default"  # the defaults of conf/run.yaml
    results = run_pipeline(cfg, tmp_path / "run")
    assert results["status"] == "complete" and results["records"]
    assert attempts == []
