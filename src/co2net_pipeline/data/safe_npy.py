"""Loading `.npy` files, object arrays included, without executing code from the file.

`np.load(allow_pickle=True)` runs arbitrary pickle opcodes; a feature file from the internet could
call any Python function. Here object arrays are unpickled with an allow-list that admits only
NumPy's own reconstruction helpers (and `_codecs.encode`, which Python-2 era files use for byte
strings), so a pickle that names anything else is refused before it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.dtypes", "Float32DType"),
    ("numpy.dtypes", "Float64DType"),
    ("numpy.dtypes", "Float16DType"),
    ("numpy.dtypes", "ObjectDType"),
    ("_codecs", "encode"),
    ("builtins", "list"),
    ("builtins", "tuple"),
    ("builtins", "dict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("copyreg", "_reconstructor"),
}


class UnsafeNpyError(ValueError):
    """The file's pickle refers to something outside NumPy's own types."""


def allowed_global(source: str, module: str, name: str, find_class):
    """The global an unpickler may build: NumPy arrays, scalars, strings and lists only
    (`find_class` is the unpickler's own lookup for the allowed ones)."""
    if (module, name) not in _ALLOWED_GLOBALS:
        raise UnsafeNpyError(
            f"{source}: refusing to unpickle '{module}.{name}': only NumPy arrays, "
            "scalars, strings and lists are allowed in feature/annotation files"
        )
    if module == "copyreg":
        import copyreg

        return copyreg._reconstructor
    return find_class(module, name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str, **kwargs):
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str):
        return allowed_global(self._source, module, name, super().find_class)


def _check_payload_size(path: Path, fh, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Compare the header's shape with the bytes that follow it, so a damaged or hostile header
    (shape (10**11, 16)) is an error naming the file instead of a MemoryError."""
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    available = path.stat().st_size - fh.tell()
    if expected > available:  # trailing bytes are harmless: np.load ignores them
        raise ValueError(
            f"{path}: not a readable .npy file (header says shape {tuple(shape)} of {dtype}, "
            f"{expected:,} bytes, but the file holds {available:,} bytes of data: truncated or "
            "corrupt)"
        )


def load_npy(path: str | Path, encoding: str = "ASCII") -> np.ndarray:
    """Load a `.npy` file; object arrays go through the restricted unpickler.

    `encoding` has the meaning of `np.load(encoding=...)` for Python-2 pickles ("ASCII" returns
    `str` for Python-2 strings, which the reference code relies on).
    Raises `ValueError` naming the file when it is unreadable, truncated or unsafe.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            if not dtype.hasobject:
                _check_payload_size(path, fh, shape, dtype)
                fh.close()
                return np.load(path, allow_pickle=False)
            try:
                array = _RestrictedUnpickler(fh, str(path), encoding=encoding).load()
            except UnsafeNpyError:
                raise
            except Exception as exc:  # truncated or corrupt pickle stream
                raise ValueError(
                    f"{path}: unreadable object array ({type(exc).__name__}: {exc})"
                ) from exc
    except UnsafeNpyError:
        raise
    except FileNotFoundError:
        raise
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc
    except OSError as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from exc
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: expected a NumPy array, found {type(array).__name__}")
    if array.shape != tuple(shape):
        raise ValueError(f"{path}: header says shape {tuple(shape)}, payload has {array.shape}")
    return array
