"""What the weight caches hold: Hub repos per commit, and torch.hub checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyzoo.hub.settings import hub_cache_dir, torch_checkpoints_dir


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


HUB_SNAPSHOTS = "snapshots"  # huggingface_hub's cache: datasets--ORG--NAME/snapshots/<commit>/


def hub_snapshot(root: Path) -> tuple[str, str] | None:
    """``(repo_id, commit)`` when ``root`` is a dataset's snapshot folder in the Hugging Face cache."""
    parts = Path(root).parts
    if len(parts) >= 3 and parts[-2] == HUB_SNAPSHOTS and parts[-3].startswith("datasets--"):
        org_name = parts[-3][len("datasets--"):]
        return org_name.replace("--", "/", 1), parts[-1]
    return None
