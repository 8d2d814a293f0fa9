"""``hf:ORG/NAME[@REV]``: a Hugging Face Hub dataset of Parquet files, fetched into the Hugging Face cache.

The rules are those of weights (:mod:`tinyzoo.hub`): the settings (``HF_HOME``, ``HF_HUB_CACHE``,
``HF_ENDPOINT``) are read per call; offline (``TINYZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) only
the cache is read; every failure is one line. Online, one request asks the Hub for the
revision's commit and file list (it fails at once when the Hub cannot be reached, where a
cached copy of that revision is used instead); then ``hf_hub_download`` brings the split
Parquet files and README.md (whose YAML may name the classes) into
``datasets--ORG--NAME/snapshots/<commit>/``, checking each new file against the Hub's
checksum. That snapshot folder is what tinyzoo reads (:class:`tinyzoo.data.parquet.ParquetDataset`)
and what a run directory records.
"""

from __future__ import annotations

import re
from pathlib import Path

from tinyzoo.errors import TinyzooError, one_line
from tinyzoo.hub.hf import COMMIT_RE, evict, is_unreachable, verify_hub_file
from tinyzoo.hub.settings import DEFAULT_REVISION, hub_cache_dir, hub_endpoint, offline_mode, request_timeout

HUB_VALUE_RE = re.compile(r"hf:([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(\S+))?")
CARD = "README.md"


def parse(value: str) -> tuple[str, str | None]:
    """``(repo_id, revision or None)`` of ``hf:ORG/NAME[@REV]``, or a one-line error."""
    match = HUB_VALUE_RE.fullmatch(value.strip())
    if match is None:
        raise TinyzooError(f"{value!r} is not a Hub dataset: write hf:ORG/NAME or hf:ORG/NAME@REVISION (e.g. hf:zh-plus/tiny-imagenet)")
    return match.group(1), match.group(2)


def repo_folder(repo_id: str) -> Path:
    """The dataset's folder in the Hugging Face cache (``datasets--ORG--NAME``)."""
    return hub_cache_dir() / ("datasets--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str, revision: str) -> Path | None:
    """The cached snapshot folder of ``revision`` (a branch, tag or commit) when it holds Parquet files."""
    folder = repo_folder(repo_id)
    commit = revision if COMMIT_RE.fullmatch(revision) else None
    ref = folder / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    snapshot = folder / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        return None
    from tinyzoo.data.parquet import find_parquet_files

    return snapshot if find_parquet_files(snapshot) else None


def how_to_get(repo_id: str, revision: str | None) -> str:
    value = f"hf:{repo_id}" + (f"@{revision}" if revision and revision != DEFAULT_REVISION else "")
    return f"run `tinyzoo data prepare {value}` on a connected machine (with the same HF_HOME) and copy its Hugging Face cache here"


def fetch(value: str, *, offline: bool | None = None) -> Path:
    """The snapshot folder of Hub dataset ``value`` (``hf:ORG/NAME[@REV]``), downloaded if needed."""
    repo_id, revision = parse(value)
    rev = revision or DEFAULT_REVISION
    cached = cached_snapshot(repo_id, rev)
    if offline_mode(offline):
        if cached is None:
            raise TinyzooError(
                f"offline, and Hub dataset {repo_id}@{rev} is not in the Hugging Face cache {hub_cache_dir()}: {how_to_get(repo_id, revision)}"
            )
        return cached
    try:
        commit, files = remote_files(repo_id, rev)
    except TinyzooError:
        raise
    except Exception as exc:
        if cached is not None and is_unreachable(exc):
            return cached  # as hf_hub_download does: the cached copy of the revision when the Hub cannot be reached
        raise dataset_error(exc, repo_id, rev, cached_note=True) from None
    return download_files(repo_id, rev, commit, files)


def remote_files(repo_id: str, revision: str) -> tuple[str, list[str]]:
    """``(commit, files to fetch)``: the revision's commit, its split Parquet files and README.md."""
    from huggingface_hub import HfApi

    from tinyzoo import __version__
    from tinyzoo.data.parquet import split_of

    api = HfApi(endpoint=hub_endpoint(), library_name="tinyzoo", library_version=__version__)
    info = api.dataset_info(repo_id, revision=revision, timeout=request_timeout())
    names = [s.rfilename for s in info.siblings or []]
    parquet = [n for n in names if n.endswith(".parquet") and split_of(Path(n)) is not None]
    if not parquet:
        raise TinyzooError(
            f"Hub dataset {repo_id}@{revision} has no Parquet files named by split (train-*.parquet, valid-*.parquet, ...): "
            f"tinyzoo reads Parquet datasets; the Hub's own Parquet conversion may be at hf:{repo_id}@refs/convert/parquet"
        )
    if not info.sha or not COMMIT_RE.fullmatch(info.sha):
        raise TinyzooError(f"the Hub at {hub_endpoint()} gave no commit for {repo_id}@{revision}; try again")
    return info.sha, sorted(parquet) + ([CARD] if CARD in names else [])


def download_files(repo_id: str, revision: str, commit: str, files: list[str]) -> Path:
    """Download ``files`` of ``revision`` into the cache (new ones checked); returns the snapshot folder."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    from tinyzoo import __version__

    cache = hub_cache_dir()
    snapshot = repo_folder(repo_id) / "snapshots" / commit
    for name in files:
        before = try_to_load_from_cache(repo_id, name, cache_dir=str(cache), revision=commit, repo_type="dataset")
        try:
            path = Path(hf_hub_download(
                repo_id, name, repo_type="dataset", revision=revision, cache_dir=str(cache), endpoint=hub_endpoint(),
                etag_timeout=request_timeout(), library_name="tinyzoo", library_version=__version__,
            ))
        except Exception as exc:
            raise dataset_error(exc, repo_id, revision, filename=name) from None
        if path.parents[len(Path(name).parts) - 1].name != commit:
            raise TinyzooError(f"Hub dataset {repo_id}@{revision} changed while it was downloading (now {path.parent.name[:12]}); run again")
        if not isinstance(before, str):
            try:
                verify_hub_file(path, repo_id, name)
            except TinyzooError:
                evict(path)
                raise
    return snapshot


def dataset_error(exc: BaseException, repo_id: str, revision: str, *, filename: str | None = None, cached_note: bool = False) -> TinyzooError:
    """A one-line error for a failed Hub call about a dataset."""
    from huggingface_hub import errors

    endpoint = hub_endpoint()
    where = f"{repo_id}@{revision}" + (f" ({filename})" if filename else "")
    if isinstance(exc, errors.GatedRepoError):
        return TinyzooError(f"Hub dataset {repo_id!r} is gated: accept its terms on {endpoint}/datasets/{repo_id} and log in (`hf auth login`)")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return TinyzooError(
            f"Hub dataset {repo_id!r} not found at {endpoint} (or it is private): check the name (hf:ORG/NAME), "
            "or log in (`hf auth login`) for a private dataset"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return TinyzooError(f"Hub dataset {repo_id!r} has no revision {revision!r}: give a branch, tag or commit that exists")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return TinyzooError(f"Hub dataset {repo_id!r} has no {filename} at revision {revision!r}")
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return TinyzooError(f"the Hub at {endpoint} answered HTTP {status} for dataset {where}; try again later")
    if is_unreachable(exc) or isinstance(exc, errors.LocalEntryNotFoundError):
        cache = f" and {repo_id}@{revision} is not in the Hugging Face cache {hub_cache_dir()}" if cached_note or filename else ""
        return TinyzooError(f"cannot reach the Hub at {endpoint} ({type(exc).__name__}){cache}: {how_to_get(repo_id, revision)}")
    if isinstance(exc, OSError):  # a size mismatch, or a full disk while downloading
        return TinyzooError(f"downloading Hub dataset {where} failed ({one_line(exc, 200)}); try again")
    return TinyzooError(f"downloading Hub dataset {where} failed: {one_line(exc, 200, typed=True)}")
