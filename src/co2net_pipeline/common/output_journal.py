"""A run's catalog outputs as one transaction: a failed run leaves the previous files, not a mix
of new and old ones.

Each catalog file is replaced atomically (`common.atomic`), but a run that fails half-way (a
full disk while MLflow logs an artifact, a bug in a later node, Ctrl-C) would leave the files it
already replaced beside older ones of another run. While a journal is open, a dataset calls
`keep(path)` just before it replaces `path`: the previous file gets a second, hidden name beside
it (a hard link, so no copy and no extra space until the new file arrives; a copy where the file
system has no hard links), `.<name>.bak-<pid>-<8 hex><suffix>`, and a path that did not exist is
noted. `commit()` drops the backups; `rollback()` moves every previous file back and removes the
files that did not exist before.

Outside an open journal (`co2net` commands, tests that call a dataset directly) `keep` does
nothing. One journal per process (`RUN_OUTPUTS`); saves from several threads are serialised,
saves in forked worker processes (ParallelRunner) are not journaled.
A process killed with `kill -9` cannot roll back: its backups stay until the next `keep` of the
same path removes them (`remove_stale_temps`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from co2net_pipeline.common.atomic import remove_stale_temps, temp_name
from co2net_pipeline.common.disk_space import DiskFullError, is_disk_full

__all__ = ["RUN_OUTPUTS", "OutputJournal", "RolledBack", "keep_previous"]

logger = logging.getLogger(__name__)


@dataclass
class RolledBack:
    """What `rollback` did: previous files put back, new files removed, paths it could not fix."""

    restored: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.restored or self.removed or self.failed)

    def summary(self) -> str:
        """`the run's outputs were rolled back (2 restored, 1 removed)`, or why not all."""
        text = (
            f"the run's outputs were rolled back ({len(self.restored)} restored, "
            f"{len(self.removed)} removed)"
        )
        if self.failed:
            text += f"; could not roll back {len(self.failed)}: {self.failed[0]}"
        return text


def _backup(path: Path) -> Path:
    """A second hidden name for the file at `path` (its symlink itself, if it is one)."""
    backup = temp_name(path, "bak")
    try:
        os.link(path, backup, follow_symlinks=False)
    except OSError:  # no hard links here (some network or FAT file systems): a copy
        try:
            shutil.copy2(path, backup, follow_symlinks=False)
        except OSError as exc:
            backup.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise DiskFullError(backup, f"keeping the previous {path.name}") from exc
            raise
    return backup


class OutputJournal:
    """The files a run replaced or created, in order, each with its previous version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Path, Path | None] | None = None
        self._pid = os.getpid()  # a forked worker (ParallelRunner) inherits no open journal
        self.last: RolledBack | None = None  # what the last rollback did (for the error line)

    @property
    def open(self) -> bool:
        return self._entries is not None and self._pid == os.getpid()

    def begin(self) -> RolledBack:
        """Open a journal; one left open (an earlier run of this process that never ended) is
        rolled back first, and returned."""
        undone = self.rollback()
        with self._lock:
            self._entries, self.last, self._pid = {}, None, os.getpid()
        return undone

    def keep(self, path: str | Path) -> None:
        """Called just before `path` is replaced: keep its previous version (first time only)."""
        with self._lock:
            if not self.open:
                return
            path = Path(os.path.abspath(path))
            if path in self._entries:
                return
            remove_stale_temps(path)  # backups of a run that was killed with kill -9
            if path.is_symlink() or path.is_file():
                self._entries[path] = _backup(path)
            elif not path.exists():
                self._entries[path] = None
            # else a folder: not a file this journal can put back

    def commit(self) -> None:
        """The run completed: its outputs stay, the previous versions are dropped."""
        with self._lock:
            entries, self._entries = (self._entries if self.open else None) or {}, None
        for backup in entries.values():
            if backup is not None:
                backup.unlink(missing_ok=True)

    def rollback(self) -> RolledBack:
        """Put back every previous file and remove the ones that did not exist (newest first)."""
        with self._lock:
            entries, self._entries = (self._entries if self.open else None) or {}, None
        done = RolledBack()
        for path, backup in reversed(entries.items()):
            try:
                if backup is not None:
                    os.replace(backup, path)
                    done.restored.append(path)
                elif path.is_symlink() or path.is_file():
                    path.unlink()
                    done.removed.append(path)
            except OSError as exc:
                done.failed.append(f"{path}: {exc.strerror or exc}")
        self.last = done
        if done:
            logger.warning(
                "%s: %s", done.summary(), ", ".join(map(str, done.restored + done.removed))
            )
        return done


# The journal of this process's `kedro run` (opened and closed by kedro_glue.run_guard).
RUN_OUTPUTS = OutputJournal()


def keep_previous(path: str | Path) -> None:
    """`RUN_OUTPUTS.keep(path)`: for a dataset about to replace `path`."""
    RUN_OUTPUTS.keep(path)
