"""What a file on disk is: its SHA-256 (remembered per process), its git object id, and
whether a safetensors file is whole. Nothing here imports torch."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from tinyzoo.errors import TinyzooError, one_line

CHUNK = 1 << 20
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of the file at ``path``.

    Remembered per process by (real path, inode, size, mtime), so a large checkpoint loaded
    again is hashed once; as git does with racily clean files, a file modified in the last
    two seconds is never remembered, since a rewrite within the clock's granularity would
    keep its mtime.
    """
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


def verify_safetensors(path: str | os.PathLike) -> None:
    """Check a safetensors header and that the file is exactly as long as it says, without torch."""
    import json
    import struct

    try:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ValueError(f"only {size} bytes")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > size - 8:
                raise ValueError(f"header of {header_len} bytes in a {size}-byte file")
            header = json.loads(f.read(header_len))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        expected = 8 + header_len + max(ends, default=0)
        if expected != size:
            raise ValueError(f"{size} bytes where its header describes {expected}")
    except FileNotFoundError:
        raise TinyzooError(f"weights file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise TinyzooError(f"{path} is not a valid safetensors file ({one_line(exc, 120)}): it may be truncated or damaged") from None
