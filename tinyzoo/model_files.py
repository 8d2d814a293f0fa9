"""The adapted-model directory: its three files and its config.json.

``tinyzoo adapt --out``, ``tinyzoo.save``, a run's ``best/``, its snapshots and checkpoints,
and a Hub repo pushed by ``tinyzoo push`` all hold the same three files. This module names
them once and reads config.json; it imports nothing heavy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tinyzoo.errors import TinyzooError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
MODEL_FILES = (WEIGHTS_FILE, CARD_FILE, CONFIG_FILE)  # written in this order: config.json last
CONFIG_FORMAT = "tinyzoo-adapted-model"
CONFIG_VERSION = 1


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an adapted-model directory (holds config.json and model.safetensors)."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def read_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The checked config.json of an adapted-model directory."""
    root = Path(directory)
    if not root.is_dir():
        raise TinyzooError(f"{root} is not a directory: give a folder written by `tinyzoo adapt --out` or tinyzoo.save")
    path = root / CONFIG_FILE
    if not path.is_file():
        raise TinyzooError(f"{path} not found: {root} is not an adapted-model folder (written by `tinyzoo adapt --out` or tinyzoo.save)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TinyzooError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise TinyzooError(f"{path} is not a tinyzoo adapted-model config (expected \"format\": \"{CONFIG_FORMAT}\")")
    if int(config.get("format_version", 0)) > CONFIG_VERSION:
        raise TinyzooError(f"{path} has format_version {config['format_version']}; this tinyzoo reads up to {CONFIG_VERSION}, upgrade tinyzoo")
    for key in ("architecture", "adapters"):
        if key not in config:
            raise TinyzooError(f"{path} has no {key!r} field")
    return config
