"""Where weights come from and where they are kept: the Hugging Face Hub, torch.hub, and their caches.

Every setting is read when a function is called, not when ``huggingface_hub`` is imported, so
``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``TINYZOO_OFFLINE`` and
``TORCH_HOME`` set by a caller (or a test) take effect. Nothing here imports torch or
``huggingface_hub`` at module level. Every failure is a one-line :class:`TinyzooError` that
names the repo or file and says how to proceed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyzoo.errors import TinyzooError, one_line

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
DEFAULT_REVISION = "main"
DEFAULT_TIMEOUT = 10.0
TRUE_VALUES = ("1", "true", "yes", "on")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


# -- settings ----------------------------------------------------------------------------
def env_flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to 1/true/yes/on."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def offline_mode(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``TINYZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` is set."""
    if offline is not None:
        return bool(offline)
    return env_flag("TINYZOO_OFFLINE") or env_flag("HF_HUB_OFFLINE")


def hub_cache_dir() -> Path:
    """The Hugging Face cache folder: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_endpoint() -> str:
    """The Hub's address: ``HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def request_timeout() -> float:
    """Seconds to wait for the Hub to answer a request (``HF_HUB_ETAG_TIMEOUT``, default 10)."""
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def torch_checkpoints_dir() -> Path:
    """torch.hub's checkpoint folder (``TORCH_HOME/hub/checkpoints``), where torchvision weights are kept."""
    if "torch" in sys.modules:  # honours torch.hub.set_dir() when torch is loaded already
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def how_to_proceed(fetch_name: str, cache_variable: str = "HF_HOME") -> str:
    return (
        f"run `tinyzoo weights fetch {fetch_name}` on a connected machine (with the same {cache_variable}), "
        "or pass --weights PATH (a .safetensors file) or --weights none"
    )


# -- files and checksums -------------------------------------------------------------------
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of the file at ``path``.

    Remembered per process by (real path, inode, size, mtime), so a large checkpoint loaded
    again is hashed once; as git does with racily clean files, a file modified in the last
    two seconds is never remembered, since a rewrite within the clock's granularity would
    keep its mtime.
    """
    import time

    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    digest = hashlib.sha256()
    with open(real, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    if time.time_ns() - st.st_mtime_ns > 2_000_000_000:
        _DIGESTS[key] = digest.hexdigest()
    return digest.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of the file (how the Hub names files it does not keep in LFS)."""
    digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class HubFile:
    """A file of a Hub repo, present in the local cache.

    ``revision`` is the commit it was resolved to (the ``snapshots/<commit>/`` folder), ``sha256``
    its checksum, already compared with the Hub's (the name of its blob); ``downloaded`` says
    whether this call brought it over the network.
    """

    repo_id: str
    filename: str
    requested: str
    revision: str
    path: Path
    sha256: str
    downloaded: bool


@dataclass(frozen=True)
class CheckpointFile:
    """A torch.hub checkpoint in the local cache (``sha256`` of the file; ``downloaded`` by this call)."""

    url: str
    path: Path
    sha256: str
    downloaded: bool


def cached_blob(path: Path) -> Path | None:
    """The ``blobs/<etag>`` file a snapshot entry links to, or None when the cache stores copies."""
    target = Path(os.path.realpath(path))
    return target if target != path.absolute() and target.parent.name == "blobs" else None


def verify_hub_file(path: Path, repo_id: str, filename: str) -> str:
    """SHA-256 of a cached Hub file, after checking it against the checksum its blob is named by."""
    sha256 = file_sha256(path)
    blob = cached_blob(path)
    if blob is None:
        return sha256
    expected = blob.name
    if SHA256_RE.fullmatch(expected):
        actual = sha256
    elif COMMIT_RE.fullmatch(expected):
        actual = git_blob_sha1(path)
    else:
        return sha256
    if actual != expected:
        raise TinyzooError(
            f"{repo_id}/{filename} in the cache ({path}) is damaged: its checksum is {actual[:12]}..., "
            f"the Hub's is {expected[:12]}...; it was removed, download it again"
        )
    return sha256


def evict(path: Path) -> None:
    """Remove a cached Hub file (its snapshot entry and blob) so that the next run downloads it again."""
    blob = cached_blob(path)
    for p in (path, blob):
        if p is not None:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
    try:
        path.parent.rmdir()  # the snapshot folder, when nothing else of that commit is cached
    except OSError:
        pass


# -- Hugging Face Hub downloads -------------------------------------------------------------
def hub_error(exc: BaseException, repo_id: str, filename: str, revision: str, fetch_name: str) -> TinyzooError:
    """A one-line error for a failed Hub call (imports huggingface_hub, which is loaded by then)."""
    import httpx2
    from huggingface_hub import errors

    where = f"{repo_id}/{filename}@{revision}"
    endpoint = hub_endpoint()
    if isinstance(exc, errors.GatedRepoError):
        return TinyzooError(f"Hub repo {repo_id!r} is gated: accept its terms on {endpoint}/{repo_id} and log in (`hf auth login`)")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return TinyzooError(
            f"Hub repo {repo_id!r} not found at {endpoint} (or it is private): check the name "
            "(hf-hub:ORG/REPO), or log in (`hf auth login`) for a private repo"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return TinyzooError(f"Hub repo {repo_id!r} has no revision {revision!r}: give a branch, tag or commit that exists")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return TinyzooError(
            f"Hub repo {repo_id!r} has no {filename} at revision {revision!r}: tinyzoo loads only safetensors "
            "weights from the Hub (pickle files are refused)"
        )
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return TinyzooError(f"the Hub at {endpoint} answered HTTP {status} for {where}; try again later or {how_to_proceed(fetch_name)}")
    if isinstance(exc, (httpx2.TransportError, errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError, ConnectionError)):
        return TinyzooError(
            f"cannot reach the Hub at {endpoint} ({type(exc).__name__}) and {where} is not in the cache "
            f"{hub_cache_dir()}: {how_to_proceed(fetch_name)}"
        )
    if isinstance(exc, OSError):  # a size mismatch, or a full disk while downloading
        return TinyzooError(f"downloading {where} failed ({one_line(exc, 200)}); try again")
    return TinyzooError(f"downloading {where} failed: {one_line(exc, 200, typed=True)}")


def probe_hub(repo_id: str, filename: str, revision: str, fetch_name: str) -> None:
    """One HEAD request with a short timeout and no retries: fails at once when the Hub cannot be reached.

    Needed because ``hf_hub_download`` retries an unreachable Hub for about 25 s (up to
    minutes on a silent network) before it gives up on a file that is not cached.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=hub_endpoint())
    try:
        get_hf_file_metadata(url, timeout=request_timeout(), endpoint=hub_endpoint())
    except Exception as exc:
        raise hub_error(exc, repo_id, filename, revision, fetch_name) from None


def download(
    repo_id: str,
    filename: str = WEIGHTS_FILE,
    *,
    revision: str | None = None,
    offline: bool | None = None,
    force: bool = False,
    fetch_name: str | None = None,
) -> HubFile:
    """``filename`` of Hub repo ``repo_id`` at ``revision`` (branch, tag or commit; default main), cached.

    Offline (``offline=True``, ``TINYZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) only the cache is
    read. ``force`` downloads again. ``fetch_name`` is what the error messages suggest to
    ``tinyzoo weights fetch`` (default: the ``hf-hub:`` id). The file is checked against the
    Hub's checksum; a damaged one is removed from the cache.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from tinyzoo import __version__

    rev = revision or DEFAULT_REVISION
    fetch_name = fetch_name or (f"hf-hub:{repo_id}" + (f"@{revision}" if revision else ""))
    cache = hub_cache_dir()
    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache), revision=rev)
    cached = Path(found) if isinstance(found, str) else None

    if offline_mode(offline):
        if force:
            raise TinyzooError(f"cannot download {repo_id}/{filename} again while offline: unset --offline, TINYZOO_OFFLINE and HF_HUB_OFFLINE")
        if cached is None:
            raise TinyzooError(
                f"offline, and {repo_id}/{filename}@{rev} is not in the Hugging Face cache {cache}: {how_to_proceed(fetch_name)}"
            )
        path, downloaded = cached, False
    else:
        if cached is None or force:
            probe_hub(repo_id, filename, rev, fetch_name)
        try:
            path = Path(
                hf_hub_download(
                    repo_id, filename, revision=rev, cache_dir=str(cache), endpoint=hub_endpoint(),
                    etag_timeout=request_timeout(), force_download=force,
                    library_name="tinyzoo", library_version=__version__,
                )
            )
        except Exception as exc:
            raise hub_error(exc, repo_id, filename, rev, fetch_name) from None
        downloaded = force or cached is None or path != cached

    commit = path.parent.name
    if not COMMIT_RE.fullmatch(commit):
        raise TinyzooError(f"{path} is not in a snapshots/<commit>/ folder of the Hugging Face cache {cache}")
    try:
        sha256 = verify_hub_file(path, repo_id, filename)
    except TinyzooError:
        evict(path)
        raise
    return HubFile(repo_id, filename, rev, commit, path, sha256, downloaded)


# -- torch.hub downloads (torchvision weights) ----------------------------------------------
def download_checkpoint(url: str, *, offline: bool | None = None, fetch_name: str | None = None, progress: bool = True) -> CheckpointFile:
    """The torch.hub checkpoint at ``url``, downloaded once into :func:`torch_checkpoints_dir`.

    torch.hub checks the SHA-256 prefix in the file name (``alexnet-owt-7be5be79.pth``) and
    keeps nothing when a download fails. Offline, only the cache is read.
    """
    from urllib.parse import urlparse

    name = os.path.basename(urlparse(url).path)
    fetch_name = fetch_name or url
    folder = torch_checkpoints_dir()
    dst = folder / name
    if dst.is_file():
        return CheckpointFile(url, dst, file_sha256(dst), False)
    if offline_mode(offline):
        raise TinyzooError(f"offline, and {name} is not in the torch.hub cache {folder}: {how_to_proceed(fetch_name, 'TORCH_HOME')}")

    import socket

    import torch.hub

    match = torch.hub.HASH_REGEX.search(name)
    folder.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(request_timeout())  # torch.hub's urlopen has no timeout of its own
    try:
        torch.hub.download_url_to_file(url, str(dst), match.group(1) if match else None, progress=progress)
    except RuntimeError as exc:  # torch.hub's hash check
        raise TinyzooError(f"{url} failed its checksum ({one_line(exc)}); nothing was kept, try again") from None
    except OSError as exc:
        raise TinyzooError(f"cannot download {url} ({one_line(exc, 120, typed=True)}): {how_to_proceed(fetch_name, 'TORCH_HOME')}") from None
    finally:
        socket.setdefaulttimeout(previous)
    return CheckpointFile(url, dst, file_sha256(dst), True)


# -- cache listing ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedEntry:
    """One cached set of weights: a Hub repo at one commit, or one torch.hub checkpoint."""

    cache: str  # "hf-hub" or "torch-hub"
    repo: str
    revision: str | None
    refs: tuple[str, ...]
    size: int
    path: str
    files: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cache": self.cache, "repo": self.repo, "revision": self.revision, "refs": list(self.refs),
            "size": self.size, "path": self.path, "files": list(self.files),
        }


def list_cached() -> list[CachedEntry]:
    """Everything in the Hugging Face cache (model repos) and torch.hub's checkpoint folder."""
    entries: list[CachedEntry] = []
    cache = hub_cache_dir()
    if cache.is_dir():
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir(cache).repos:
            if repo.repo_type != "model":
                continue
            for rev in repo.revisions:
                entries.append(CachedEntry(
                    "hf-hub", repo.repo_id, rev.commit_hash, tuple(sorted(rev.refs)), rev.size_on_disk,
                    str(rev.snapshot_path), tuple(sorted(f.file_name for f in rev.files)),
                ))
    folder = torch_checkpoints_dir()
    if folder.is_dir():
        for f in folder.iterdir():
            if f.is_file() and not f.name.endswith(".partial"):
                entries.append(CachedEntry("torch-hub", f.name, None, (), f.stat().st_size, str(f), (f.name,)))
    return sorted(entries, key=lambda e: (e.cache, e.repo, e.refs == (), e.revision or ""))


# -- upload ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelDir:
    """An adapted-model directory, checked for upload: its files (relative path, size) and card metadata."""

    path: Path
    files: tuple[tuple[str, int], ...]
    card: dict[str, Any]
    config: dict[str, Any]


def check_model_dir(path: str | os.PathLike) -> ModelDir:
    """Check that ``path`` is a ``tinyzoo adapt`` output ready for the Hub, or raise a one-line error.

    It needs ``model.safetensors`` (a whole safetensors file), ``config.json`` (a JSON object)
    and a ``README.md`` model card whose YAML front matter has ``library_name: tinyzoo``,
    ``tags``, a ``datasets`` entry naming tiny-imagenet, and ``base_model`` naming the Hub repo
    when ``config.json``'s ``weights.source`` is an ``hf-hub:`` one.
    """
    import json

    root = Path(path)
    if not root.is_dir():
        raise TinyzooError(f"{root} is not a directory: give the --out folder of `tinyzoo adapt`")
    for name in (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE):
        if not (root / name).is_file():
            raise TinyzooError(f"{root} has no {name}: give the --out folder of `tinyzoo adapt` (model.safetensors, config.json, README.md)")
    from tinyzoo.weights import verify_safetensors  # here: weights imports this module

    verify_safetensors(root / WEIGHTS_FILE)
    try:
        config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TinyzooError(f"{root / CONFIG_FILE} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise TinyzooError(f"{root / CONFIG_FILE} must hold a JSON object")

    from huggingface_hub import ModelCard

    text = (root / CARD_FILE).read_text(encoding="utf-8")
    if not text.lstrip().startswith("---"):
        raise TinyzooError(
            f"{root / CARD_FILE} has no YAML front matter: start it with a --- block giving library_name: tinyzoo, tags, datasets and base_model"
        )
    try:
        card = ModelCard(text).data.to_dict()
    except Exception as exc:
        raise TinyzooError(f"{root / CARD_FILE}: its YAML front matter does not parse ({one_line(exc, 120)})") from None
    problems = []
    if card.get("library_name") != "tinyzoo":
        problems.append(f"library_name: tinyzoo (found {card.get('library_name')!r})")
    if not card.get("tags"):
        problems.append("tags: a list (e.g. [tinyzoo, image-classification])")
    datasets = card.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else datasets
    if not any("tiny-imagenet" in str(d).lower() for d in datasets):
        problems.append("datasets: naming tiny-imagenet")
    weights = config.get("weights") if isinstance(config.get("weights"), dict) else {}
    source = str(weights.get("source") or "")
    if source.startswith("hf-hub:"):  # only Hub weights have an id to name
        hub_id = source[len("hf-hub:"):].partition("@")[0]
        base = card.get("base_model")
        if hub_id not in ([base] if isinstance(base, str) else base or []):
            problems.append(f"base_model: {hub_id} (the weights config.json says were adapted; found {base!r})")
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
