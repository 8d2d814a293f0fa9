"""Writing files and folders so that no reader ever sees them half-written.

Everything tinyzoo writes goes through here: a file or folder is made under a temporary
sibling name that carries :data:`TEMP_MARK`, flushed to disk, then renamed into place. A
crash leaves at worst a temporary name beside the target, never a damaged target;
:func:`sweep_temporaries` removes such leftovers of processes that are gone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"  # every temporary name contains it: ".<target name>.tmp-<pid>-<ns>[suffix]"


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh temporary name beside ``path`` (hidden, unique to this process and moment)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{time.monotonic_ns()}{suffix}")


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (the renames into it) to disk, where the platform allows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file that another library wrote (safetensors, numpy, matplotlib) to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path for the caller to write ``path``'s content to; on success it is
    flushed and renamed over ``path`` (mode from the umask), on failure removed.

    ``suffix`` keeps an extension libraries insist on (``np.savez`` adds ``.npz``, matplotlib
    reads the format from ``.png``).
    """
    path = Path(path)
    tmp = temp_sibling(path, suffix)
    try:
        yield tmp
        fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def append_durable(path: str | os.PathLike, line: str) -> None:
    """Append ``line`` to ``path`` and flush it to disk (a log whose earlier lines stay intact)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def temp_dir_beside(target: Path) -> Path:
    """A new empty temporary folder beside ``target`` (parents made), with a plain mkdir's mode."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_MARK}{os.getpid()}-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
    return staging


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target``
    (an old ``target`` is moved aside, then deleted), on failure it is removed.
    """
    target = Path(target)
    staging = temp_dir_beside(target)
    try:
        yield staging
        replace_dir(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def replace_dir(source: Path, target: Path) -> None:
    """Move folder ``source`` to ``target``, replacing what was there, and flush the rename."""
    old = None
    if target.exists():
        old = temp_sibling(target, ".old")
        os.replace(target, old)
    os.replace(source, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporary_owner(name: str) -> int | None:
    """The process id in a temporary name made here, or None when ``name`` is not one."""
    if TEMP_MARK not in name:
        return None
    digits = name.split(TEMP_MARK, 1)[1].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def sweep_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` (not below it) left by processes that no longer
    run; returns what was removed. Another live process's temporaries are left alone."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        pid = temporary_owner(entry.name)
        if pid is None or not entry.name.startswith(".") or pid == os.getpid() or _pid_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
