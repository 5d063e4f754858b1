"""Decide quickly whether the Hugging Face hub can be reached.

Asking transformers for an uncached model with no network makes it retry for minutes; we
probe once, with a short timeout, and fail with a message instead.
"""
import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


def hub_offline(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return True
    if os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in _TRUE:
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return False
    except OSError:
        return True
