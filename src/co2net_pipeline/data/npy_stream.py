"""Streaming read of a pickled object-array `.npy` (the W-TALC feature file), one entry at a time.

`np.load` / `safe_npy.load_npy` unpickle the whole object array before returning, so reading a
10.6 GB ActivityNet1.2 feature file needs 10.6 GB of memory. Here the pickle stream is run
opcode by opcode with the pure-Python unpickler: every per-video array is handed out as soon as
its BUILD completes and replaced by `None` in the list being built, and neither the arrays nor
their raw byte buffers are kept in the pickle memo. Peak memory is about one video (its bytes
and its array) plus constant, whatever the file size.

The same allow-list as `safe_npy` applies: a pickle naming anything beyond NumPy's own
reconstruction helpers is refused before it runs.
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from co2net_pipeline.data.safe_npy import UnsafeNpyError, allowed_global

# Buffers at least this large are not memoised: the pickler memoises every bytes object, and
# keeping them would hold the whole file. A back-reference to one is refused (never in np.save).
_BIG_BUFFER = 1 << 12


def _is_big(value: object) -> bool:
    return isinstance(value, np.ndarray) or (
        isinstance(value, bytes | bytearray | str) and len(value) >= _BIG_BUFFER
    )


class NonArrayEntryError(ValueError):
    """Entry `index` of the object array is not a numeric array (it is a `kind`)."""

    def __init__(self, path: Path, index: int, kind: str) -> None:
        super().__init__(f"{path}[{index}]: entry is a {kind}, not a numeric array")
        self.index = index
        self.kind = kind


class TruncatedArrayError(ValueError):
    """The object array's pickle stream ends or breaks after `count` whole entries: entry
    `count` is the first that cannot be read (a truncated or corrupt file)."""

    def __init__(self, path: Path, count: int, cause: BaseException) -> None:
        self.count = count
        self.reason = f"{type(cause).__name__}: {cause}"
        super().__init__(f"{path}: unreadable object array after {count} entries ({self.reason})")


class _Forgotten:
    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


class _Memo(dict):
    """Pickle memo that keeps small objects (dtypes, shapes) but forgets arrays and big buffers."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def __setitem__(self, key, value) -> None:
        # An array's state tuple (version, shape, dtype, fortran, raw bytes) is memoised too.
        big = _is_big(value) or (isinstance(value, tuple) and any(map(_is_big, value)))
        super().__setitem__(key, _Forgotten(key) if big else value)

    def __getitem__(self, key):
        value = super().__getitem__(key)
        if isinstance(value, _Forgotten):
            raise ValueError(
                f"{self.source}: the pickle refers back to an earlier array (memo {key}); "
                "streaming needs every entry stored once"
            )
        return value


class _StreamingUnpickler(pickle._Unpickler):
    """Pure-Python unpickler that hands out the top-level object array's entries as they complete."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source: str, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)
        self._source = source
        self.memo = _Memo(source)
        self._list_depth: int | None = None  # metastack depth of the entries list
        self._ready: deque[np.ndarray] = deque()
        self.streamed = 0

    def find_class(self, module: str, name: str):
        return allowed_global(self._source, module, name, super().find_class)

    def _load_empty_list(self) -> None:
        # The entries list is the first list inside the state tuple of the top-level ndarray:
        # that array (made by REDUCE, its dtype still a placeholder until BUILD) tops the
        # stack saved by the tuple's MARK; dtype and shape are tuples, never lists.
        outer = self.metastack[-1] if self.metastack else None
        if self._list_depth is None and outer and isinstance(outer[-1], np.ndarray):
            self._list_depth = len(self.metastack)
        pickle._Unpickler.load_empty_list(self)

    def _load_build(self) -> None:
        pickle._Unpickler.load_build(self)
        obj = self.stack[-1]
        if (
            self._list_depth is not None
            and len(self.metastack) == self._list_depth + 1
            and isinstance(obj, np.ndarray)
            and not obj.dtype.hasobject
        ):
            self._ready.append(obj)
            self.stack[-1] = None  # the list gets a placeholder, the caller gets the array
            self.streamed += 1

    dispatch[pickle.EMPTY_LIST[0]] = _load_empty_list
    dispatch[pickle.BUILD[0]] = _load_build

    def entries(self) -> Iterator[np.ndarray]:
        """Yield each entry as it is unpickled; returns (StopIteration.value) the final object."""
        # Same set-up as pickle._Unpickler.load, with a yield after every opcode.
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack = []
        self.stack = []
        self.append = self.stack.append
        self.proto = 0
        read = self.read
        dispatch = self.dispatch
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError("pickle stream ends before STOP")
                dispatch[key[0]](self)
                while self._ready:
                    yield self._ready.popleft()
        except pickle._Stop as stop:
            return stop.value


def npy_header(path: Path, fh) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an open `.npy` file, positioned after the header."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def iter_object_npy(path: str | Path, encoding: str = "bytes") -> Iterator[np.ndarray]:
    """Yield the entries of a pickled 1-D object array `.npy` in order, one at a time.

    encoding: as `np.load(encoding=...)`; "bytes" reads Python-2 pickled arrays (W-TALC's
    files) as the reference does. Raises `ValueError` naming the file for a truncated, corrupt
    or unsafe stream, a header that is not a 1-D object array, or an entry count that
    disagrees with the header; `UnsafeNpyError` for a forbidden global.
    """
    path = Path(path)
    try:
        fh = open(path, "rb")  # closed in the finally below
    except OSError as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc
    try:
        shape, _, dtype = npy_header(path, fh)
        if not dtype.hasobject or len(shape) != 1:
            raise ValueError(
                f"{path}: expected a 1-D object array, found dtype {dtype} with shape {shape}"
            )
        unpickler = _StreamingUnpickler(fh, str(path), encoding=encoding)
        stream = unpickler.entries()
        count = 0
        try:
            while True:
                entry = next(stream)
                count += 1
                yield entry
        except StopIteration as done:
            final = done.value
        except (UnsafeNpyError, ValueError):
            raise
        except Exception as exc:  # truncated or corrupt pickle stream
            raise TruncatedArrayError(path, count, exc) from exc
        if not isinstance(final, np.ndarray) or final.shape != tuple(shape):
            found = getattr(final, "shape", type(final).__name__)
            raise ValueError(f"{path}: header says shape {tuple(shape)}, payload has {found}")
        # Entries the stream could not hand out early (not numeric arrays, or an old pickle
        # protocol without list batching) follow in order when nothing was streamed.
        rest = [i for i, item in enumerate(final) if item is not None]
        if rest and count:
            raise NonArrayEntryError(path, rest[0], type(final[rest[0]]).__name__)
        for i in rest:
            yield final[i]
    finally:
        fh.close()
