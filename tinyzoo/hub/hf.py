"""Files of Hugging Face Hub repos: downloaded once into the Hugging Face cache, checked.

``huggingface_hub`` is imported inside the functions. Every failure is a one-line
:class:`TinyzooError` that names the repo or file and says how to proceed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.digests import file_sha256, git_blob_sha1
from tinyzoo.hub.settings import DEFAULT_REVISION, how_to_proceed, hub_cache_dir, hub_endpoint, hub_repo_folder, offline_mode, request_timeout
from tinyzoo.model_files import WEIGHTS_FILE

HF_HUB_PREFIXES = ("hf-hub:", "hf_hub:")
REPO_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # ORG/NAME
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")


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


def how_to_copy(fetch_name: str, repo_id: str) -> str:
    return how_to_proceed(fetch_name, f"the folder {hub_repo_folder(repo_id)}", hub_cache_dir())


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the Hub could not be reached (rather than answered "no")."""
    import httpx2
    from huggingface_hub import errors

    return isinstance(exc, (httpx2.TransportError, errors.OfflineModeIsEnabled, ConnectionError, TimeoutError))


def hub_error(exc: BaseException, repo_id: str, filename: str, revision: str, fetch_name: str) -> TinyzooError:
    """A one-line error for a failed Hub call (imports huggingface_hub, which is loaded by then)."""
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
        return TinyzooError(f"the Hub at {endpoint} answered HTTP {status} for {where}; try again later, or {how_to_copy(fetch_name, repo_id)}")
    if is_unreachable(exc) or isinstance(exc, errors.LocalEntryNotFoundError):
        return TinyzooError(
            f"this machine cannot reach the Hub at {endpoint} ({type(exc).__name__}), and {where} is not in its Hugging Face cache "
            f"{hub_cache_dir()}: {how_to_copy(fetch_name, repo_id)}"
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


def _fetch(repo_id: str, filename: str, rev: str, cached: Path | None, force: bool, fetch_name: str) -> tuple[Path, bool]:
    """(path, downloaded): the file through ``hf_hub_download``, which asks whether ``rev`` moved."""
    from huggingface_hub import hf_hub_download

    from tinyzoo import __version__

    if cached is None or force:
        probe_hub(repo_id, filename, rev, fetch_name)
    try:
        path = Path(
            hf_hub_download(
                repo_id, filename, revision=rev, cache_dir=str(hub_cache_dir()), endpoint=hub_endpoint(),
                etag_timeout=request_timeout(), force_download=force,
                library_name="tinyzoo", library_version=__version__,
            )
        )
    except Exception as exc:
        raise hub_error(exc, repo_id, filename, rev, fetch_name) from None
    return path, force or cached is None or path != cached


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
    from huggingface_hub import try_to_load_from_cache

    rev = revision or DEFAULT_REVISION
    fetch_name = fetch_name or (f"hf-hub:{repo_id}" + (f"@{revision}" if revision else ""))
    cache = hub_cache_dir()
    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(cache), revision=rev)
    cached = Path(found) if isinstance(found, str) else None

    if not offline_mode(offline):
        path, downloaded = _fetch(repo_id, filename, rev, cached, force, fetch_name)
    elif force:
        raise TinyzooError(f"cannot download {repo_id}/{filename} again while offline: unset --offline, TINYZOO_OFFLINE and HF_HUB_OFFLINE")
    elif cached is None:
        raise TinyzooError(f"offline, and {repo_id}/{filename}@{rev} is not in the Hugging Face cache {cache}: {how_to_copy(fetch_name, repo_id)}")
    else:
        path, downloaded = cached, False

    commit = path.parent.name
    if not COMMIT_RE.fullmatch(commit):
        raise TinyzooError(f"{path} is not in a snapshots/<commit>/ folder of the Hugging Face cache {cache}")
    try:
        sha256 = verify_hub_file(path, repo_id, filename)
    except TinyzooError:
        evict(path)
        raise
    return HubFile(repo_id, filename, rev, commit, path, sha256, downloaded)
