"""The project's one way of writing a file or a folder atomically.

A reader sees the previous content or the new one, never half of it, and an interrupted or
failed write (an exception, KeyboardInterrupt) leaves no temporary file behind. Everything is
written under a unique temporary name in the target's own folder (same file system, so the
final `os.replace` is atomic): `.<name>.tmp-<pid>-<random><suffix>`. The process id and the
random part keep two writers to one folder (two runs, two threads) from sharing a temporary
file; the last complete write wins. The data is fsync'ed before the rename, so a power cut
cannot leave a renamed but empty file.

    with atomic_path(path) as tmp:          # any library that writes to a path
        torch.save(obj, tmp)
    atomic_write_text(path, text)
    with atomic_directory(folder) as tmp:   # a folder of files, moved in whole
        (tmp / "a.npy").write_bytes(...)
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temps",
    "temp_name",
]

# The kinds of temporary names this module gives out (`temp_name(path, kind)`).
TEMP_KINDS = ("tmp", "old", "staging", "bak")  # bak: common.output_journal


def temp_name(path: str | Path, kind: str = "tmp") -> Path:
    """A fresh hidden name beside `path` that keeps its suffix (matplotlib and pandas choose the
    format from it): `.<name>.<kind>-<pid>-<8 hex><suffix>`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def _pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (signal 0 checks without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's, or not a pid
        return pid > 0
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files and folders `temp_name` gave out for `path` to processes that
    no longer run (killed with `kill -9`, or a power cut: no `finally` removed them; a staged
    ActivityNet store is ~10 GB). Returns what was removed. A previous folder moved aside
    (`atomic_directory`) whose replacement never arrived is moved back instead.

    A process that still runs keeps its temporaries, and so does a reused pid (left for a later
    call). Processes are looked up on this machine: two machines writing one shared folder at
    the same time are not supported."""
    path = Path(path)
    pattern = re.compile(
        rf"\.{re.escape(path.name)}\.({'|'.join(TEMP_KINDS)})-(\d+)-[0-9a-f]{{8}}"
        rf"{re.escape(path.suffix)}"
    )
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*"))
    except OSError:  # an unreadable folder: the write itself will report it
        return []
    removed = []
    for found in candidates:
        match = pattern.fullmatch(found.name)
        if match is None or int(match.group(2)) == os.getpid() or _pid_alive(int(match.group(2))):
            continue
        if match.group(1) == "old" and not path.exists():
            # killed between moving the previous folder aside and moving the new one in: the
            # aside copy is the last complete one
            os.replace(found, path)
            continue
        if found.is_dir() and not found.is_symlink():
            shutil.rmtree(found, ignore_errors=True)
        else:
            found.unlink(missing_ok=True)
        if not found.exists():
            removed.append(found)
    return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable; not every platform can open a folder (best effort)."""
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


def _check_parent(path: Path) -> None:
    """Create the parent folder, with a one-line error when a parent is a file."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"{path}: cannot write here, {parent} is a file")
    path.parent.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block completes, the file written there
    is fsync'ed and moved over `path`. On any exception it is removed and `path` is untouched."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, expected a file path")
    _check_parent(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"{path}: nothing was written to the temporary file {tmp}")
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` then move `tmp` over `path` (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


@contextmanager
def atomic_directory(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block completes, its files are
    fsync'ed and the folder is renamed to `path`. An existing `path` is replaced (moved aside
    first and deleted only after the rename succeeded) or, with `replace=False`, an error
    before anything is written. On any exception the temporary folder is removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path}: is a file, expected a folder path")
    if path.exists() and not replace:
        raise FileExistsError(f"{path}: already exists")
    _check_parent(path)
    remove_stale_temps(path)
    tmp = temp_name(path)
    tmp.mkdir()
    old: Path | None = None
    try:
        yield tmp
        for file in (p for p in tmp.rglob("*") if p.is_file()):
            _fsync_file(file)
        if path.exists():
            old = temp_name(path, "old")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(path.parent)
