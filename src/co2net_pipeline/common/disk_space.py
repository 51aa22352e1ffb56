"""A full disk as one line naming the file: checked before a large write where its size is known,
recognised afterwards in whatever form the writing library reports it (h5py's RuntimeError
text, pyarrow's OSError, torch's "unexpected pos")."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

__all__ = ["DiskFullError", "is_disk_full", "require_free_space"]

_ENOSPC_TEXT = ("no space left on device", "errno = 28", "[errno 28]")


class DiskFullError(OSError):
    """`<path>: no space left on device (<detail>)`; an OSError with errno ENOSPC."""

    def __init__(self, path: str | Path, detail: str | None = None) -> None:
        message = f"{path}: no space left on device"
        self.message = f"{message} ({detail})" if detail else message
        super().__init__(self.message)
        self.errno = errno.ENOSPC
        self.path, self.detail = Path(path), detail

    def __str__(self) -> str:  # OSError's own would show "[Errno 28] None"
        return self.message

    def moved(self, old: Path, new: Path) -> DiskFullError:
        """The same error for a file that was being staged under `old` and belongs in `new`."""
        path = new / self.path.relative_to(old) if self.path.is_relative_to(old) else self.path
        return DiskFullError(path, self.detail)


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error` or an exception in its chain says the disk is full."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) == errno.ENOSPC:
            return True
        if any(text in str(error).lower() for text in _ENOSPC_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def require_free_space(path: str | Path, needed: int, what: str = "the file") -> None:
    """Raise `DiskFullError` unless the file system `path` will live on has `needed` bytes free
    (its nearest existing folder is asked)."""
    path = Path(path)
    folder = next((p for p in (path.parent, *path.parents) if p.is_dir()), Path("."))
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFullError(path, f"{what} needs {_mib(needed)}, {_mib(free)} free")
