"""Publishing an adapted-model directory to the Hub: checked first, then uploaded in one commit."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.digests import verify_safetensors
from tinyzoo.hub.hf import REPO_ID_RE
from tinyzoo.hub.settings import DEFAULT_REVISION, hub_endpoint
from tinyzoo.model_files import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE


@dataclass(frozen=True)
class ModelDir:
    """An adapted-model directory, checked for upload: its files (relative path, size) and card metadata."""

    path: Path
    files: tuple[tuple[str, int], ...]
    card: dict[str, Any]
    config: dict[str, Any]


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` when it is ORG/NAME, else a one-line error."""
    if not REPO_ID_RE.fullmatch(repo_id):
        raise TinyzooError(f"repo id {repo_id!r}: expected ORG/NAME, e.g. me/resnet18-tiny-imagenet")
    return repo_id


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TinyzooError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TinyzooError(f"{path} must hold a JSON object")
    return config


def _read_card(path: Path) -> dict[str, Any]:
    """The YAML front matter of a model card, as a dict."""
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("---"):
        raise TinyzooError(
            f"{path} has no YAML front matter: start it with a --- block giving library_name: tinyzoo, tags, datasets and base_model"
        )
    try:
        return ModelCard(text).data.to_dict()
    except Exception as exc:
        raise TinyzooError(f"{path}: its YAML front matter does not parse ({one_line(exc, 120)})") from None


def card_problems(card: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """What the card's front matter lacks for the Hub (empty when nothing)."""
    problems = []
    if card.get("library_name") != "tinyzoo":
        problems.append(f"library_name: tinyzoo (found {card.get('library_name')!r})")
    if not card.get("tags"):
        problems.append("tags: a list (e.g. [tinyzoo, image-classification])")
    datasets = card.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else datasets
    if not any("tiny-imagenet" in str(d).lower() for d in datasets):
        problems.append("datasets: naming tiny-imagenet")
    weights = config.get("weights")
    weights = weights if isinstance(weights, dict) else {}
    source = str(weights.get("source") or "")
    if source.startswith("hf-hub:"):  # only Hub weights have an id to name
        hub_id = source[len("hf-hub:"):].partition("@")[0]
        base = card.get("base_model")
        if hub_id not in ([base] if isinstance(base, str) else base or []):
            problems.append(f"base_model: {hub_id} (the weights config.json says were adapted; found {base!r})")
    return problems


def check_model_dir(path: str | os.PathLike) -> ModelDir:
    """Check that ``path`` is a ``tinyzoo adapt`` output ready for the Hub, or raise a one-line error.

    It needs ``model.safetensors`` (a whole safetensors file), ``config.json`` (a JSON object)
    and a ``README.md`` model card whose YAML front matter has ``library_name: tinyzoo``,
    ``tags``, a ``datasets`` entry naming tiny-imagenet, and ``base_model`` naming the Hub repo
    when ``config.json``'s ``weights.source`` is an ``hf-hub:`` one.
    """
    root = Path(path)
    if not root.is_dir():
        raise TinyzooError(f"{root} is not a directory: give the --out folder of `tinyzoo adapt`")
    for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE):
        if not (root / name).is_file():
            raise TinyzooError(f"{root} has no {name}: give the --out folder of `tinyzoo adapt` (model.safetensors, config.json, README.md)")
    verify_safetensors(root / WEIGHTS_FILE)
    config = _read_config(root / CONFIG_FILE)
    card = _read_card(root / CARD_FILE)
    problems = card_problems(card, config)
    if problems:
        raise TinyzooError(f"{root / CARD_FILE}: the model card's front matter needs " + "; ".join(problems))
    files = tuple(
        (p.relative_to(root).as_posix(), p.stat().st_size)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    return ModelDir(root, files, card, config)


def upload_model_dir(model_dir: ModelDir, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                     commit_message: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload the checked directory in one commit; returns the commit's URL."""
    from huggingface_hub import HfApi, errors

    check_repo_id(repo_id)
    api = HfApi(endpoint=hub_endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(model_dir.path), revision=revision,
            commit_message=commit_message or f"Upload {model_dir.path.name} with tinyzoo",
            ignore_patterns=[".*", "**/.*"],
        )
    except errors.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        hint = "log in with `hf auth login` (a token with write access)" if status in (401, 403) else "check the repo id and try again"
        raise TinyzooError(f"uploading to {repo_id} at {hub_endpoint()} failed with HTTP {status}: {hint}") from None
    except Exception as exc:
        raise TinyzooError(f"uploading to {repo_id} at {hub_endpoint()} failed: {one_line(exc, 160, typed=True)}") from None
    return str(getattr(info, "commit_url", info))
