"""One run at a time in a project folder: an advisory lock on a file that names its holder.

Two `kedro run` in one project share every catalog path (`data/06_models/co2net.pt`, the
checkpoints, `data/07_model_output/`): the second would read the first one's model. The lock is
`fcntl.flock` on a small file, so the kernel releases it when the holder's process ends in any
way (`kill -9` included): a lock file left by a dead process is stale by construction and is
simply taken over. The file's text (pid, start time, command) only serves the refusal message.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LockHeld", "ProjectLock", "waiting_lock"]

logger = logging.getLogger(__name__)

# Locks this process holds, by resolved path: a second acquire in the same process is a no-op
# (a session that failed before releasing must not lock its own process out).
_HELD: dict[Path, int] = {}


class LockHeld(RuntimeError):
    """Another live process holds the lock; the message names it in one line."""


class ProjectLock:
    """`fcntl.flock` on `path`; `what` names the guarded thing in the refusal message."""

    def __init__(self, path: str | Path, what: str = "this project") -> None:
        self.path = Path(path).absolute()
        self.what = what

    @property
    def held(self) -> bool:
        return self.path in _HELD

    def acquire(self, command: str) -> None:
        """Take the lock or raise `LockHeld` naming the holder's pid, start time and command."""
        if self.held:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                # a file system without locks (some network mounts): run unguarded, say so
                logger.warning(
                    "%s: cannot lock (%s); concurrent runs are not detected", self.path, exc
                )
                return
            raise LockHeld(f"{self.path}: {self.what} is in use by {holder}") from None
        info = {"pid": os.getpid(), "started": time.time(), "command": command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD[self.path] = fd

    def release(self) -> None:
        """Let the next run in; the file stays (removing a locked file races with a waiter)."""
        fd = _HELD.pop(self.path, None)
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing drops the flock


def _read_holder(fd: int) -> str:
    """`pid 123 (started 2026-12-06 04:50:01 UTC: kedro run ...)` from the lock file's text."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(info["started"])))
        return f"pid {int(info['pid'])} (started {started}: {info.get('command', '?')})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its details are unreadable)"


@contextmanager
def waiting_lock(path: str | Path, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` for the block, waiting up to `timeout_s` for it
    (`LockHeld` after that). For short critical sections between processes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld(f"{path}: still locked after {timeout_s:.0f} s") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # drops the flock
