"""Writing files and folders so that no reader ever sees them half-written.

Everything tinyzoo writes goes through here: a file or folder is made under a temporary
sibling name that carries :data:`TEMP_MARK`, flushed to disk, then renamed into place. A
crash leaves at worst a temporary name beside the target, never a damaged target;
:func:`sweep_temporaries` removes such leftovers of processes that are gone.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".tmp-"  # every temporary name contains it: ".<target name>.tmp-<pid>-<ns>[suffix]"
OLD_SUFFIX = ".old"  # a folder being replaced, moved aside: put back by the sweep if the new one never arrived
KILL_ENV = "TINYZOO_TEST_KILL_AT"  # test support only: see crash_point
_crash_hits: dict[str, int] = {}


def crash_point(point: str) -> None:
    """Test support only: SIGKILL this process when ``$TINYZOO_TEST_KILL_AT`` names ``point``.

    The writers below call it at each instant a crash could leave something half-done, with
    ``point`` = ``"<target name>:<moment>"``: ``staged`` (the new content is complete under its
    temporary name, nothing renamed yet), ``swapping`` (a replaced folder moved aside, the new
    one not yet in place), ``replaced`` (the new content in place, the old not yet removed),
    ``discarding`` (a folder being deleted, renamed to a temporary name). The variable holds a
    shell pattern, optionally with ``#N`` to crash at the N-th match (``best:swapping#2``).
    Unset, as it always is outside tests, this costs one dictionary lookup.
    """
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    pattern, _, count = wanted.partition("#")
    if not fnmatch.fnmatchcase(point, pattern):
        return
    _crash_hits[pattern] = _crash_hits.get(pattern, 0) + 1
    if _crash_hits[pattern] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


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


def follow_umask(path: str | os.PathLike) -> None:
    """Give a file another library wrote (safetensors writes 0600) the mode ``open()`` would: 0666 less the umask."""
    os.chmod(path, 0o666 & ~_umask())


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
        follow_umask(tmp)
        crash_point(f"{path.name}:staged")
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
    """Move folder ``source`` to ``target``, replacing what was there, and flush the rename.

    An old ``target`` is first renamed aside (a temporary ending in :data:`OLD_SUFFIX`); should
    the process die before the new folder is in place, :func:`sweep_temporaries` puts it back.
    """
    crash_point(f"{target.name}:staged")
    old = None
    if target.exists():
        old = temp_sibling(target, OLD_SUFFIX)
        os.replace(target, old)
        crash_point(f"{target.name}:swapping")
    os.replace(source, target)
    fsync_dir(target.parent)
    if old is not None:
        crash_point(f"{target.name}:replaced")
        shutil.rmtree(old, ignore_errors=True)


def discard_dir(path: str | os.PathLike) -> None:
    """Delete folder ``path`` whole: renamed to a temporary name first, so that a crash midway
    leaves a temporary for the sweep, never a half-deleted folder under its own name."""
    path = Path(path)
    if not path.is_dir():
        return
    doomed = temp_sibling(path, ".discarded")
    os.replace(path, doomed)
    crash_point(f"{path.name}:discarding")
    shutil.rmtree(doomed, ignore_errors=True)


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


def temporary_target(name: str) -> str:
    """The name a temporary made here stands in for (``.best.tmp-12-34.old`` -> ``best``)."""
    return name[1:].split(TEMP_MARK, 1)[0]


def sweep_temporaries(folder: str | os.PathLike, target: str | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` (not below it) left by processes that no longer
    run (only those standing in for ``target``, when given); returns what was removed.

    Another live process's temporaries are left alone. A folder that :func:`replace_dir` had
    moved aside when its process died, and whose replacement never arrived, is put back
    under its name instead of being removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    entries = sorted(folder.iterdir(), key=lambda e: not e.name.endswith(OLD_SUFFIX))  # put back before removing
    for entry in entries:
        pid = temporary_owner(entry.name)
        if pid is None or not entry.name.startswith(".") or pid == os.getpid() or _pid_alive(pid):
            continue
        name = temporary_target(entry.name)
        if target is not None and name != target:
            continue
        if entry.name.endswith(OLD_SUFFIX) and entry.is_dir() and not (folder / name).exists():
            os.replace(entry, folder / name)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
