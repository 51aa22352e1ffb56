"""Train features for the training loop: on the device, in host memory, or read from the store.

Three modes, chosen once per run:
- device: one concatenated float32 tensor on the GPU, batches gathered there (no host copy);
  filled video by video, so the host never holds the whole subset.
- host: one float32 array per video in memory (the subset fits in `memory_budget_gb`).
- store: the subset does not fit the budget; each batch reads its videos from the HDF5 feature
  store (one contiguous read per video) through an LRU cache of whole videos bounded in bytes.
  Only lengths and, for the valid-length quirk, one boolean per snippet stay in memory.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping

import numpy as np
import torch

logger = logging.getLogger(__name__)

_GB = 1 << 30


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Small host array to the device; on CUDA through pinned memory without waiting."""
    tensor = torch.from_numpy(array)
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def _shape(features: Mapping[str, np.ndarray], vid: str) -> tuple[int, ...]:
    # Store views (`store.FeatureView`) know shapes from the index without reading a video.
    shape_of = getattr(features, "shape_of", None)
    return tuple(shape_of(vid)) if shape_of is not None else np.shape(features[vid])


def _train_shapes(
    features: Mapping[str, np.ndarray], video_ids: list[str]
) -> tuple[int, np.ndarray]:
    """(width 2D, (N,) lengths) of the videos, checked: each has features of shape (T, 2D)."""
    shapes = []
    for vid in video_ids:
        if vid not in features:
            raise ValueError(f"{vid}: in the sampling plan but has no features")
        shape = _shape(features, vid)
        if len(shape) != 2 or shape[0] < 1:
            raise ValueError(f"{vid}: features have shape {shape}, expected (T, 2D)")
        shapes.append(shape)
    widths = {s[1] for s in shapes}
    if len(widths) != 1:
        raise ValueError(f"train features have different widths {sorted(widths)}")
    return widths.pop(), np.array([s[0] for s in shapes])


class _StoreReader:
    """Videos read from a lazy store view by number, through an LRU cache of whole videos
    bounded in bytes (a video larger than the bound is not kept); `reads` counts store reads."""

    def __init__(self, features: Mapping[str, np.ndarray], video_ids: list[str], limit: int):
        self.features, self.video_ids, self.limit = features, video_ids, limit
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.nbytes = 0
        self.reads = 0

    def __call__(self, v: int) -> np.ndarray:
        arr = self.cache.get(v)
        if arr is not None:
            self.cache.move_to_end(v)
            return arr
        arr = np.asarray(self.features[self.video_ids[v]], dtype=np.float32)
        self.reads += 1
        if arr.nbytes <= self.limit:
            self.cache[v] = arr
            self.nbytes += arr.nbytes
            while self.nbytes > self.limit:
                _, old = self.cache.popitem(last=False)
                self.nbytes -= old.nbytes
        return arr


def _each_video(bank: FeatureBank) -> Iterator[np.ndarray]:
    """Every video's array once, in order, checked, collecting the valid rows on the way."""
    for vid, length in zip(bank.video_ids, bank.lengths, strict=True):
        arr = np.asarray(bank.features[vid])
        if arr.shape != (length, bank.width):
            raise ValueError(
                f"{vid}: features have shape {arr.shape}, expected ({length}, {bank.width})"
            )
        if bank.valid_rows is not None:
            bank.valid_rows.append(np.any(arr != 0, axis=1))
        yield arr


def _device_tensor(bank: FeatureBank) -> tuple[np.ndarray, torch.Tensor]:
    """(N,) row offsets and one concatenated float32 tensor on the device, filled video by
    video (the host never holds the whole subset)."""
    offsets = np.concatenate(([0], np.cumsum(bank.lengths)[:-1]))
    tensor = torch.empty(
        (int(bank.lengths.sum()), bank.width), dtype=torch.float32, device=bank.device
    )
    for off, arr in zip(offsets, _each_video(bank), strict=True):
        tensor[off : off + len(arr)] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return offsets, tensor


def _mode(
    nbytes: int,
    device: torch.device,
    on_device: bool | None,
    lazy: bool,
    memory_budget_gb: float | None,
) -> str:
    """The bank's mode: "device", "store" (a lazy view over the host budget) or "host"."""
    if on_device is None:
        on_device = device.type == "cuda" and nbytes < torch.cuda.mem_get_info(device)[0] / 2
    over_budget = memory_budget_gb is not None and nbytes > memory_budget_gb * _GB
    return "device" if on_device else ("store" if lazy and over_budget else "host")


class FeatureBank:
    """Train features of the plan's videos (in `video_ids` order), gathered into batches.

    features: video_id -> (T, 2D), a dict of arrays or a lazy `store.FeatureView`.
    on_device: True / False / None (auto: on CUDA when the subset takes under half of the free
        device memory). memory_budget_gb: host bytes the features may take; None = unlimited.
        A lazy view over budget is read from the store per batch (mode "store"); a plain dict
        is in memory already and stays there. cache_gb: LRU cache of whole videos in "store"
        mode (default: half the budget).
    mode: "device", "host" or "store". lengths: (N,) snippets per video. width: 2D.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        video_ids: np.ndarray,
        device: torch.device,
        on_device: bool | None,
        need_valid_rows: bool,
        memory_budget_gb: float | None = None,
        cache_gb: float | None = None,
    ) -> None:
        self.device = device
        self.features = features
        self.video_ids = [str(v) for v in video_ids]
        self.width, self.lengths = _train_shapes(features, self.video_ids)
        self.nbytes = int(self.lengths.sum()) * self.width * 4
        lazy = hasattr(features, "shape_of")
        self.mode = _mode(self.nbytes, device, on_device, lazy, memory_budget_gb)
        self.arrays: list[np.ndarray] | None = None
        self.bank: torch.Tensor | None = None
        self.valid_rows: list[np.ndarray] | None = [] if need_valid_rows else None
        cache = cache_gb if cache_gb is not None else (memory_budget_gb or 0) / 2
        self._store = _StoreReader(features, self.video_ids, int(cache * _GB))
        if self.mode == "device":
            self.offsets, self.bank = _device_tensor(self)
        elif self.mode == "host":
            self.arrays = list(_each_video(self))
        else:
            for _ in _each_video(self):  # one pass for the valid rows only
                pass
            logger.info(
                "train features (%.2f GB) exceed training.feature_memory_gb=%s: read per batch "
                "from the feature store, %.2f GB video cache",
                self.nbytes / _GB,
                memory_budget_gb,
                self._store.limit / _GB,
            )
        # Host batches for CUDA are assembled in pinned memory and copied without waiting. Each
        # batch gets its own buffer: the step does not wait for the GPU, so a reused buffer
        # could be overwritten before its copy ran; the caching host allocator hands a block
        # out again only after its copy has completed.
        self.pin = device.type == "cuda" and self.mode != "device"

    @property
    def reads(self) -> int:
        """Videos read from the store (mode "store"), for measurements."""
        return self._store.reads

    def _video(self, v: int) -> np.ndarray:
        """Video number `v`'s (T, 2D) array: in memory, or from the store through the cache."""
        return self.arrays[v] if self.arrays is not None else self._store(v)

    def valid_length(self, videos: np.ndarray, idx: np.ndarray) -> int:
        """Largest number of sampled snippets with any non-zero value (reference seq_len)."""
        assert self.valid_rows is not None
        return int(max(self.valid_rows[v][i].sum() for v, i in zip(videos, idx, strict=True)))

    def gather(self, videos: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """(B, T', 2D) float32 batch on the device; idx: (B, T') snippet indices."""
        if self.bank is not None:
            flat = to_device((self.offsets[videos][:, None] + idx).ravel(), self.device)
            return self.bank.index_select(0, flat).view(len(videos), idx.shape[1], self.width)
        shape = (len(videos), idx.shape[1], self.width)
        host = torch.empty(shape, dtype=torch.float32, pin_memory=self.pin)
        out = host.numpy()
        for slot, (v, i) in enumerate(zip(videos, idx, strict=True)):  # loop over videos
            out[slot] = self._video(v)[i]
        return host.to(self.device, non_blocking=self.pin)
