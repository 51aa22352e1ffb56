"""Streaming write of a W-TALC object-array `.npy`: one entry at a time, the bytes `np.save` writes.

`np.save` of an object array pickles the whole array in one go: every per-video array must be
in memory, and the pickler's memo keeps a reference to each one and to the byte copy of its
data that `ndarray.__reduce__` makes, so writing a file takes about twice its size in memory.
Here the same pickle stream is produced incrementally: the per-video arrays come from an
iterator, each is pickled as soon as it arrives, and memo entries that only the memo still
references are dropped afterwards. Peak memory is about one video (its array and its byte
copy) plus constant, whatever the file size.

Byte identity with `np.save` (checked by tests/data/test_synthetic.py):
- the header is NumPy's own version 1.0 header for shape (n,) and dtype object;
- the pickle is protocol 4 (what `np.save` uses), produced by the standard library's
  pure-Python pickler: same opcodes, the same 64 KiB framing and large-buffer rule as the C
  pickler that `np.save` calls, and the outer array's reduce value taken from NumPy itself;
- two details are aligned with the C pickler: memo indices keep counting when dead entries are
  dropped (the index is the memo's length in the pure-Python pickler), and the list of entries
  is written in the C pickler's batches (MARK … APPENDS of at most 1000 entries, a lone APPEND
  only for a one-entry list; the pure-Python pickler ends a list of 1000k+1 entries with APPEND).
Dropping a memo entry whose object only the memo references cannot change the output: a dead
object can never be met again, and its index stays reserved.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from co2net_pipeline.common.atomic import atomic_path

_PROTOCOL = 4  # np.lib.format.write_array pickles object arrays with protocol 4
_BATCH = 1000  # entries per MARK … APPENDS batch, as in CPython's C pickler


class _Entries:
    """The outer array's list of entries, produced lazily (a stand-in for the real list)."""

    def __init__(self, items: Iterable, count: int) -> None:
        self.items = items
        self.count = count


class _LazyObjectArray:
    """Reduces like a 1-D object ndarray of `count` entries whose list is `_Entries`."""

    def __init__(self, entries: _Entries) -> None:
        self.entries = entries

    def __reduce_ex__(self, protocol: int):
        func, args, state = np.empty(0, dtype=object).__reduce_ex__(protocol)
        version, _shape, dtype, fortran, _items = state
        return func, args, (version, (self.entries.count,), dtype, fortran, self.entries)


class _StreamingPickler(pickle._Pickler):
    """Pure-Python pickler that forgets dead memo entries and writes `_Entries` lazily."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, source: str) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self._source = source
        self._next_index = 0
        self._recent: list[int] = []
        self._pending: list[int] = []

    def memoize(self, obj) -> None:
        # The memo index is a running count, not len(memo), because entries are dropped.
        idx = self._next_index
        self.write(self.put(idx))
        self.memo[id(obj)] = idx, obj
        self._recent.append(id(obj))
        self._next_index += 1

    def _forget_dead(self) -> None:
        """Drop memo entries whose object only the memo holds, among those added by the last
        entry and those still alive after the entry before it (a generator may hold the item
        it yielded until it is resumed); what survives two checks is a shared constant."""
        alive = []
        for key in self._pending + self._recent:
            # 2 = the memo's (index, obj) tuple + getrefcount's own argument.
            if sys.getrefcount(self.memo[key][1]) <= 2:
                del self.memo[key]
            elif key in self._recent:
                alive.append(key)
        self._pending = alive
        self._recent = []

    def save_entries(self, entries: _Entries) -> None:
        self.write(pickle.EMPTY_LIST)
        self.memoize(entries)
        self._recent.clear()  # the stand-in list stays alive until the end
        iterator: Iterator = iter(entries.items)
        written = 0

        def next_item():
            nonlocal written
            try:
                item = next(iterator)
            except StopIteration:
                raise ValueError(
                    f"{self._source}: {entries.count} entries announced, the iterator gave {written}"
                ) from None
            written += 1
            return item

        if entries.count == 1:
            self.save(next_item())
            self._forget_dead()
            self.write(pickle.APPEND)
        elif entries.count > 1:
            while written < entries.count:
                self.write(pickle.MARK)
                for _ in range(min(_BATCH, entries.count - written)):
                    self.save(next_item())
                    self._forget_dead()
                self.write(pickle.APPENDS)
        if next(iterator, None) is not None:
            raise ValueError(
                f"{self._source}: {entries.count} entries announced, the iterator gave more"
            )

    dispatch[_Entries] = save_entries


def write_object_npy(
    path: str | Path,
    items: Iterable[np.ndarray],
    count: int,
) -> Path:
    """Write `count` arrays from `items` as a 1-D object-array `.npy`, atomically and streaming.

    The file has the bytes `np.save(path, arr, allow_pickle=True)` would write for the object
    array `arr` holding the same entries. `items` may be a generator: each entry is released
    once written, so peak memory is one entry (plus its byte copy) and constant overhead.
    A different number of items than `count` is an error; nothing is left at `path` then.
    """
    path = Path(path)
    if count < 0:
        raise ValueError(f"{path}: count must be ≥ 0, got {count}")
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(object)),
        "fortran_order": False,
        "shape": (count,),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        _StreamingPickler(fh, str(path)).dump(_LazyObjectArray(_Entries(items, count)))
    return path
