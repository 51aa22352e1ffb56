"""The embedded default dataset: SYNTHETIC two-stream snippet features on the REAL annotations.

The real I3D features are gigabytes behind a download link, so the project ships a generator
that writes a W-TALC-format feature file for the real THUMOS14 (or ActivityNet1.2) annotation
set: same videos, same subsets, same durations, same ground-truth segments, same weak labels.
Only the feature values are invented. Nothing trained on them says anything about real I3D.

Generative model
----------------
Video v has T = max(1, round(duration·25/16)) snippets (spec §1.1). Each modality m ∈ {r, f}
(RGB = columns 0..D−1, flow = D..2D−1) is, per snippet t (a row of (T, D)):

    x_t^m =  σ · ε_t^m                                                snippet noise
           + Σ_k  a_k · e_k(t) · (w_{c_k}^m · μ_{c_k}^m + j_k^m)      action instances k of v
           + b_v^m + [m = r] · γ · Σ_{c ∈ C_v} κ_c                    scene (+ RGB class context)
           + d_t^m                                                    slow scene drift
           + g^m ⊙ z_t   (on the n_irr irrelevant channels only)      shared, action-free factors

- e_k(t) = clip(min((t+½ − s_k)/ρ, (e_k − t − ½)/ρ) + ½, 0, 1): a trapezoid over the segment
  [s_k, e_k] = [t_start, t_end]·25/16 (snippet units), with linear onset/offset ramps of width
  ρ = `ramp_snippets` centred on the annotated boundaries, so boundaries are soft.
- μ_c^m ∈ R^D: class signature, non-zero on `signal_channels` channels drawn (per class and
  modality) from the D − n_irr action channels, values U(0.5, 1.5) (actions raise some
  channels, like post-ReLU I3D activations). w_c^m ~ signal_strength·U(0.6, 1.4): a class can be
  more visible in one modality than in the other.
- a_k = max(0, 1 + ½·s·n_k)², n_k ~ N(0, 1), s = `instance_amplitude_std`: instance strength,
  positive and right-skewed with mean ≈ 1 and sd ≈ s (a LogNormal(0, s) look-alike without
  exp); j_k^m ~ N(0, `instance_jitter_std`² · signal_strength²) on the class's channels:
  instance variation.
- b_v^m ~ N(0, `background_std`²) per video and channel: the scene. κ_c ~ N(0, 1) on the action
  channels: the class's typical scene (billiard table, pool); C_v = classes of v's segments;
  γ = `context_strength`. The context appears in background snippets too, so RGB alone
  confuses "scene of class c" with "action c" — the attention has to resolve it with flow.
- d_t^m: per channel a stationary AR(1), d_t = φ d_{t−1} + √(1−φ²)·`drift_std`·ξ_t with
  φ = τ/(1+τ), τ = `drift_timescale` (≈ exp(−1/τ), the correlation time in snippets),
  independent per modality.
- z_t ∈ R^{n_irr}: the same AR(1) with std `irrelevant_std` and timescale
  `irrelevant_timescale`, SHARED by both modalities (g^r, g^f: fixed per-channel gains ±U(0.8,
  1.5)) and unrelated to actions — the cross-modal redundancy that CCM re-calibration removes.
- ε ~ N(0, 1) i.i.d., σ = `noise_std`.

Here N(0, 1) is Irwin–Hall's approximation (sum of 12 uniforms − 6: mean 0, variance 1, within
±6, kurtosis 2.9 against the Gaussian's 3), see `_normal`.

The same bytes on every CPU
---------------------------
The feature file is bit-identical on every machine that runs the project's NumPy version (x86
with or without AVX2/AVX-512/AMX, ARM), because the generator only uses operations whose IEEE
754 results cannot depend on the instruction set:
- random numbers only as integers and uniforms from `np.random.Generator(PCG64)`
  (`integers`, `random`, `permutation`: integer arithmetic; `random` is a 53-bit integer times
  2⁻⁵³). `standard_normal` is not used: its ziggurat calls libm's exp/log in the tails, and
  glibc picks an FMA or a non-FMA variant of those at run time. `uniform(a, b)` and
  `lognormal` are not used either (a compiler may fuse a + (b−a)·u into an FMA on ARM).
- Gaussian noise is Irwin–Hall: twelve 16-bit fields of three 64-bit draws, summed in integer
  arithmetic (exact, any order), then one float multiply.
- float64 arithmetic is elementwise +, −, ×, /, √, comparisons, min/max and casts, each
  correctly rounded by IEEE 754 whatever the SIMD width; never exp/log/sin/tanh/power (NumPy's
  SIMD versions and libm's differ in the last bits between CPUs), never a float reduction
  (sum, mean, dot, matmul: their order follows the SIMD width or the BLAS kernel) and no SciPy
  filter. Sums of several terms are explicit adds in a fixed order: segments in annotation
  order, scene contexts in sorted class order, the AR(1) recursion snippet by snippet.
- the float32 output is one correctly rounded cast.
A test pins the sha256 of the default set (tests/data/test_synthetic.py,
`test_synthetic_digest*`).

Determinism: every random draw comes from `np.random.Generator(PCG64)` seeded by a
`SeedSequence` of (seed, SHA-256 of the class name or video id), so a video's features depend
only on the seed, its own annotation and the parameters — not on the order or the subset of
videos generated.

Memory: the feature file is written video by video (`npy_writer.write_object_npy`, the bytes
`np.save` would write), so synthesizing ActivityNet1.2 at full width (2 × 1024, 10.6 GB) needs
about one video in memory, not the whole file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from co2net_pipeline.common.atomic import atomic_directory, atomic_path, atomic_write_text
from co2net_pipeline.common.config import dataclass_from_dict
from co2net_pipeline.data.annotations import (
    SHIPPED_DATASETS,
    SNIPPETS_PER_SECOND,
    Annotations,
    expected_snippets,
    load_wtalc_annotations,
    shipped_annotations_dir,
)
from co2net_pipeline.data.npy_writer import write_object_npy
from co2net_pipeline.data.safe_npy import load_npy

# Distinct SeedSequence streams for dataset-level draws (never collide with video streams,
# which use the video id's hash).
_CLASS_STREAM = 1
_VIDEO_STREAM = 2
_GLOBAL_STREAM = 3

# Files of a W-TALC annotation folder indexed by video (restricted when a subset is written).
_PER_VIDEO_FILES = (
    "videoname",
    "subset",
    "duration",
    "segments",
    "labels",
    "labels_all",
    "original_fps",
    "extracted_fps",
    "resolution",
    "url",
)


@dataclass
class SyntheticParams:
    """Parameters of the synthetic feature generator (see the module docstring for the model).

    feature_dim: D, channels per modality (features are (T, 2D)); 32 keeps CPU training fast.
    subset: subsets to generate (e.g. ["validation"]); None = every video of the annotations.
    signal_channels: active channels per class signature and modality (None: D // 4, ≥ 1).
    n_irrelevant: channels per modality carrying the shared action-free factors (None: D // 4).
    """

    feature_dim: int = 32
    seed: int = 0
    subset: list[str] | str | None = None  # a string: one subset
    signal_strength: float = 1.5
    signal_channels: int | None = None
    instance_amplitude_std: float = 0.25
    instance_jitter_std: float = 0.3
    ramp_snippets: float = 2.0
    noise_std: float = 1.0
    background_std: float = 0.5
    context_strength: float = 0.4
    drift_std: float = 0.5
    drift_timescale: float = 30.0
    n_irrelevant: int | None = None
    irrelevant_std: float = 1.5
    irrelevant_timescale: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.subset, str):
            self.subset = [self.subset]
        if self.feature_dim < 2:
            raise ValueError(f"feature_dim must be ≥ 2, got {self.feature_dim}")
        n_irr = self.irrelevant_channels
        if not 0 <= n_irr < self.feature_dim:
            raise ValueError(f"n_irrelevant must be in [0, {self.feature_dim - 1}], got {n_irr}")
        if not 1 <= self.active_channels <= self.feature_dim - n_irr:
            raise ValueError(
                f"signal_channels must be in [1, {self.feature_dim - n_irr}] "
                f"(feature_dim − n_irrelevant), got {self.active_channels}"
            )
        for name in (
            "noise_std",
            "background_std",
            "drift_std",
            "irrelevant_std",
            "ramp_snippets",
            "instance_amplitude_std",
            "instance_jitter_std",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("drift_timescale", "irrelevant_timescale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def irrelevant_channels(self) -> int:
        return self.feature_dim // 4 if self.n_irrelevant is None else int(self.n_irrelevant)

    @property
    def active_channels(self) -> int:
        if self.signal_channels is not None:
            return int(self.signal_channels)
        return max(1, self.feature_dim // 4)

    @classmethod
    def from_dict(cls, values: Mapping | None) -> SyntheticParams:
        """Build from a parameters dictionary; unknown keys are an error (typos must not pass)."""
        return dataclass_from_dict(cls, values, "synthetic parameter(s)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _stable_key(text: str) -> list[int]:
    """Four 32-bit words of SHA-256(text): a seed component independent of Python's hash salt."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def _rng(seed: int, stream: int, key: str = "") -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, stream, *_stable_key(key)]))
    )


# Irwin–Hall from 16-bit fields: the sum of twelve U{0..65535} has mean 12·65535/2 and
# variance 12·(65536² − 1)/12. math.sqrt and the division are correctly rounded everywhere.
_IH_MEAN = 12 * 65535 // 2
_IH_SCALE = 1.0 / math.sqrt(65536.0**2 - 1.0)
_LOW16 = np.uint64(0x0000FFFF0000FFFF)
_LOW32 = np.uint64(0xFFFFFFFF)
_UINT64_MAX = np.iinfo(np.uint64).max
_NORMAL_BLOCK = 1 << 14


def _pair_sums(words: np.ndarray) -> np.ndarray:
    """Each uint64 as two 32-bit lanes holding the sums of its 16-bit fields in pairs."""
    high = words >> np.uint64(16)
    high &= _LOW16
    words &= _LOW16
    words += high
    return words


def _normal(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """N(0, 1)-like float64 noise of `shape`, identical on every CPU (Irwin–Hall of 12 uniforms).

    Three 64-bit draws per value give twelve 16-bit uniforms; their sum is taken in integer
    arithmetic on the values (not a byte view, so endianness does not matter) and centred and
    scaled with one subtraction and one multiplication. Range ±6, variance 1. Values are made
    in row-major order, in blocks of `_NORMAL_BLOCK` (so the integer temporaries stay in cache);
    a block of n values takes 3n draws, the k-th n of them giving every value's k-th 4 fields.
    """
    out = np.empty(shape, dtype=np.float64)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _NORMAL_BLOCK):
        n = min(_NORMAL_BLOCK, flat.size - start)
        words = rng.integers(0, _UINT64_MAX, size=(3, n), dtype=np.uint64, endpoint=True)
        lanes = _pair_sums(words[0])
        lanes += _pair_sums(words[1])
        lanes += _pair_sums(words[2])  # each 32-bit lane ≤ 6 · 65535: no carry between lanes
        total = (lanes & _LOW32) + (lanes >> np.uint64(32))
        centred = total.astype(np.int64) - _IH_MEAN
        np.multiply(centred, _IH_SCALE, out=flat[start : start + n])
    return out


def _uniform(rng: np.random.Generator, low: float, high: float, size=None) -> np.ndarray | float:
    """U(low, high) as low + (high − low)·u with u = `rng.random()`, two separately rounded ops."""
    u = rng.random(size)
    return low + (high - low) * u


@dataclass(frozen=True)
class _ClassModel:
    """Per-class parameters, both modalities side by side: arrays of shape (2D,)."""

    signature: np.ndarray  # w_c^m · μ_c^m, zero outside the class's channels
    support: np.ndarray  # bool, the class's channels
    context: np.ndarray  # κ_c on RGB action channels, zero on flow


def _class_model(name: str, params: SyntheticParams, action_channels: np.ndarray) -> _ClassModel:
    rng = _rng(params.seed, _CLASS_STREAM, name)
    d = params.feature_dim
    signature = np.zeros(2 * d)
    for offset in (0, d):
        chans = rng.permutation(action_channels)[: params.active_channels]
        weight = params.signal_strength * float(_uniform(rng, 0.6, 1.4))
        signature[offset + chans] = weight * _uniform(rng, 0.5, 1.5, chans.size)
    context = np.zeros(2 * d)
    context[action_channels] = _normal(rng, action_channels.size)
    return _ClassModel(signature, signature != 0, context)


def _ar1(xi: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """(n, W) stationary unit-variance AR(1) driven by `xi` (n, W), coefficient `phi` (W,).

    y_0 = ξ_0 (the stationary law), y_t = φ·y_{t−1} + √(1−φ²)·ξ_t, one snippet at a time: the
    recursion has to be sequential, and explicit elementwise steps keep every rounding fixed
    (a filter routine may fuse multiply-adds differently per CPU). Overwrites and returns `xi`.
    """
    first = xi[0].copy()
    xi *= np.sqrt(1.0 - phi * phi)
    xi[0] = first
    for t in range(1, len(xi)):
        xi[t] += phi * xi[t - 1]
    return xi


def _envelopes(starts: np.ndarray, ends: np.ndarray, n: int, ramp: float) -> np.ndarray:
    """(n, K) trapezoid activity e_k(t) of K segments given in snippet units."""
    centre = np.arange(n, dtype=np.float64)[:, None] + 0.5
    if ramp <= 0:
        return ((centre >= starts[None]) & (centre < ends[None])).astype(np.float64)
    rise = (centre - starts[None]) / ramp
    fall = (ends[None] - centre) / ramp
    return np.clip(np.minimum(rise, fall) + 0.5, 0.0, 1.0)


def _video_features(
    video_id: str,
    n_snippets: int,
    segments: pd.DataFrame,
    classes: Mapping[str, _ClassModel],
    irrelevant: np.ndarray,
    gains: np.ndarray,
    params: SyntheticParams,
) -> np.ndarray:
    """(T, 2D) float32 features of one video; `segments` are its rows (t_start_s, t_end_s, label)."""
    d2 = 2 * params.feature_dim
    root = np.random.SeedSequence([params.seed, _VIDEO_STREAM, *_stable_key(video_id)])
    rng_inst, rng_scene, rng_drift, rng_irr, rng_noise = (
        np.random.Generator(np.random.PCG64(s)) for s in root.spawn(5)
    )
    x = params.noise_std * _normal(rng_noise, (n_snippets, d2))

    labels = segments["label"].tolist()
    if labels:
        starts = segments["t_start_s"].to_numpy(np.float64) * SNIPPETS_PER_SECOND
        ends = segments["t_end_s"].to_numpy(np.float64) * SNIPPETS_PER_SECOND
        env = _envelopes(starts, ends, n_snippets, params.ramp_snippets)  # (T, K)
        amp = np.maximum(
            0.0, 1.0 + (0.5 * params.instance_amplitude_std) * _normal(rng_inst, len(labels))
        )
        amp = amp * amp
        jitter_std = params.instance_jitter_std * params.signal_strength
        jitter = _normal(rng_inst, (len(labels), d2))
        for k, lab in enumerate(labels):
            # One segment at a time, in annotation order, only over the snippets it touches:
            # a matmul would sum the segments in a CPU-dependent order.
            active = np.flatnonzero(env[:, k])
            if not active.size:
                continue
            cls = classes[lab]
            pattern = amp[k] * (cls.signature + (jitter_std * jitter[k]) * cls.support)
            lo, hi = active[0], active[-1] + 1
            x[lo:hi] += env[lo:hi, k, None] * pattern

    scene = params.background_std * _normal(rng_scene, d2)
    for lab in sorted(set(labels)):
        scene += params.context_strength * classes[lab].context
    x += scene
    # Drift (2D columns) and the shared factors (n_irr columns) share one AR(1) pass.
    n_irr = irrelevant.size // 2
    xi = np.concatenate(
        [_normal(rng_drift, (n_snippets, d2)), _normal(rng_irr, (n_snippets, n_irr))], axis=1
    )
    phi = np.concatenate(
        [
            np.full(d2, params.drift_timescale / (1.0 + params.drift_timescale)),
            np.full(n_irr, params.irrelevant_timescale / (1.0 + params.irrelevant_timescale)),
        ]
    )
    slow = _ar1(xi, phi)
    x += params.drift_std * slow[:, :d2]
    if n_irr:
        z = params.irrelevant_std * slow[:, d2:]
        x[:, irrelevant] += np.concatenate([z, z], axis=1) * gains
    return x.astype(np.float32)


def _dataset_layout(params: SyntheticParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(action channel indices within a modality, irrelevant column indices in 2D, their gains)."""
    rng = _rng(params.seed, _GLOBAL_STREAM, "layout")
    d = params.feature_dim
    irr = np.sort(rng.permutation(d)[: params.irrelevant_channels])
    action = np.setdiff1d(np.arange(d), irr)
    columns = np.concatenate([irr, irr + d])
    sign = (2 * rng.integers(0, 2, size=columns.size) - 1).astype(np.float64)
    gains = _uniform(rng, 0.8, 1.5, columns.size) * sign
    return action, columns, gains


def _video_lengths(annotations: Annotations) -> np.ndarray:
    """(V,) snippet counts T_i = max(1, round(duration_i·25/16)) in annotation order."""
    durations = annotations.videos["duration_s"].to_numpy(np.float64)
    if not np.all(np.isfinite(durations)):
        raise ValueError(
            f"{annotations.name}: every video needs a finite duration to size its features"
        )
    return np.maximum(expected_snippets(durations), 1)


def iter_features(
    annotations: Annotations, params: SyntheticParams | None = None
) -> Iterator[np.ndarray]:
    """Synthetic features of every video of `annotations`, one at a time, in annotation order.

    Yields float32 arrays (T_i, 2·feature_dim); only one video is computed at a time, so a
    writer that consumes them one by one needs memory for one video. See `generate_features`.
    """
    params = params or SyntheticParams()
    action, irrelevant, gains = _dataset_layout(params)
    names = sorted(set(annotations.classlist) | set(annotations.segments["label"]))
    classes = {name: _class_model(name, params, action) for name in names}
    lengths = _video_lengths(annotations)
    by_video = dict(tuple(annotations.segments.groupby("video_id", sort=False)))
    empty = annotations.segments.iloc[:0]
    for vid, n in zip(annotations.videos["video_id"], lengths, strict=True):
        yield _video_features(
            vid, int(n), by_video.get(vid, empty), classes, irrelevant, gains, params
        )


def generate_features(
    annotations: Annotations, params: SyntheticParams | None = None
) -> list[np.ndarray]:
    """Synthetic features for every video of `annotations`, in annotation order.

    Returns a list of float32 arrays (T_i, 2·feature_dim) with T_i = max(1, round(duration_i·25/16)).
    `params.subset` is not applied here: restrict the annotations first with `select_subset`.
    Videos are generated independently, so a video's features are the same whatever else is
    generated.
    """
    return list(iter_features(annotations, params))


def select_subset(
    annotations: Annotations, subset: Sequence[str] | None
) -> tuple[Annotations, np.ndarray]:
    """Annotations restricted to `subset` (None: all) and the kept row positions in file order."""
    if subset is None:
        return annotations, np.arange(len(annotations.videos))
    mask = annotations.videos["subset"].isin(list(subset)).to_numpy()
    if not mask.any():
        known = sorted(annotations.videos["subset"].unique())
        raise ValueError(
            f"{annotations.name}: no video in subset(s) {list(subset)} (subsets: {known})"
        )
    keep = np.flatnonzero(mask)
    videos = annotations.videos.iloc[keep].reset_index(drop=True)
    ids = set(videos["video_id"])
    segments = annotations.segments[annotations.segments["video_id"].isin(ids)].reset_index(
        drop=True
    )
    ambiguous = annotations.ambiguous[annotations.ambiguous["video_id"].isin(ids)].reset_index(
        drop=True
    )
    return Annotations(annotations.name, annotations.classlist, videos, segments, ambiguous), keep


def _counted(items: Iterable[np.ndarray], n_expected: int, source: str) -> Iterator[np.ndarray]:
    """`items`, checked to be exactly `n_expected` long while they stream past."""
    n = 0
    for item in items:
        if n == n_expected:
            raise ValueError(
                f"{source}: more than {n_expected} feature arrays for {n_expected} annotated videos"
            )
        n += 1
        yield item
    if n != n_expected:
        raise ValueError(f"{source}: {n} feature arrays for {n_expected} annotated videos")


def write_wtalc_annotations(
    src_folder: str | Path, out_folder: str | Path, keep: Sequence[int] | None = None
) -> Path:
    """Copy a W-TALC annotation folder to `out_folder` atomically, optionally keeping only rows `keep`.

    Per-video arrays (videoname, subset, segments, …) are re-saved restricted to `keep` (row
    positions, file order); `classlist.npy` and other files are copied unchanged;
    `Ambiguous_test.txt` keeps the lines of kept videos.
    """
    src, out = Path(src_folder), Path(out_folder)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: annotation folder not found")
    with atomic_directory(out) as tmp:
        if keep is None:
            shutil.copytree(src, tmp, dirs_exist_ok=True)
        else:
            keep = np.asarray(keep, dtype=np.int64)
            names = load_npy(src / "videoname.npy")
            kept_ids = {v.decode() if isinstance(v, bytes) else str(v) for v in names[keep]}
            for item in sorted(src.iterdir()):
                if item.suffix == ".npy" and item.stem in _PER_VIDEO_FILES:
                    array = load_npy(item)
                    if len(array) != len(names):
                        raise ValueError(
                            f"{item}: {len(array)} rows, videoname.npy has {len(names)}"
                        )
                    with open(tmp / item.name, "wb") as fh:
                        np.save(fh, array[keep], allow_pickle=array.dtype.hasobject)
                elif item.name == "Ambiguous_test.txt":
                    # Original lines verbatim (format and line endings) for the kept videos.
                    lines = item.read_bytes().splitlines(keepends=True)
                    kept = [ln for ln in lines if ln.split() and ln.split()[0].decode() in kept_ids]
                    (tmp / item.name).write_bytes(b"".join(kept))
                elif item.is_file():
                    shutil.copy2(item, tmp / item.name)
    return out


def features_filename(dataset_name: str) -> str:
    """W-TALC feature file name of a dataset: `<Name>-I3D-JOINTFeatures.npy`."""
    return f"{dataset_name}-I3D-JOINTFeatures.npy"


def write_wtalc_dataset(
    out_dir: str | Path,
    dataset_name: str,
    features: Iterable[np.ndarray],
    annotations_src_folder: str | Path,
    keep: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Write a W-TALC dataset folder: `<out_dir>/<Name>-I3D-JOINTFeatures.npy` + `<Name>-Annotations/`.

    features: one (T_i, 2D) array per video, in the order of the annotation rows `keep` (None:
    every row of `annotations_src_folder`); a list or an iterator (e.g. `iter_features`), which
    is written video by video without holding the set in memory. The feature file has the bytes
    `np.save` writes for the object array. Both parts are written to temporary names and moved
    into place, the feature file last, so its presence means the dataset is complete; a wrong
    number of arrays leaves nothing behind. Returns {"features": path, "annotations": path}.
    """
    out_dir = Path(out_dir)
    src = Path(annotations_src_folder)
    n_src = len(load_npy(src / "videoname.npy"))
    n_expected = n_src if keep is None else len(keep)
    if isinstance(features, Sized) and len(features) != n_expected:
        raise ValueError(f"{src}: {len(features)} feature arrays for {n_expected} annotated videos")
    out_dir.mkdir(parents=True, exist_ok=True)
    feat_path = out_dir / features_filename(dataset_name)
    with atomic_path(feat_path) as tmp:
        write_object_npy(tmp, _counted(features, n_expected, str(src)), n_expected)
        ann_dir = write_wtalc_annotations(src, out_dir / f"{dataset_name}-Annotations", keep)
    return {"features": feat_path, "annotations": ann_dir}


def _shipped_key(dataset_name: str) -> str:
    lowered = dataset_name.lower()
    for key, name in SHIPPED_DATASETS.items():
        if lowered in (key, name.lower()):
            return key
    raise ValueError(
        f"no shipped annotations for dataset '{dataset_name}' "
        f"(choose from {sorted(SHIPPED_DATASETS.values())})"
    )


def synthesize(
    output_dir: str | Path = "data/01_raw/synthetic",
    dataset_name: str = "Thumos14reduced",
    params: Mapping | None = None,
) -> dict:
    """Generate and write the synthetic W-TALC dataset for the shipped annotations.

    dataset_name: "Thumos14reduced" / "ActivityNet1.2" (or "thumos14" / "activitynet12"); the
    files are named after the canonical W-TALC name. params: `SyntheticParams` fields, e.g.
    {"feature_dim": 1024} for I3D's full width (2 × 1024). Videos are generated and written one
    at a time: peak memory is about one video whatever the dataset. Returns a manifest of what
    was written.
    """
    key = _shipped_key(dataset_name)
    name = SHIPPED_DATASETS[key]
    synth = SyntheticParams.from_dict(params)
    src = shipped_annotations_dir(key)
    annotations, keep = select_subset(load_wtalc_annotations(src, name=name), synth.subset)
    lengths = _video_lengths(annotations)
    started = time.perf_counter()
    paths = write_wtalc_dataset(
        output_dir,
        name,
        iter_features(annotations, synth),
        src,
        keep=None if synth.subset is None else keep,
    )
    return {
        "synthetic": True,
        "dataset_name": name,
        "n_videos": len(lengths),
        "n_snippets": sum(int(n) for n in lengths),
        "generator": synth.to_dict(),
        "seconds": time.perf_counter() - started,
        "features": str(paths["features"]),
        "annotations": str(paths["annotations"]),
    }


MANIFEST_NAME = "manifest.json"
# Present while a set is being written: an interrupted write leaves the folder still ours.
WRITING_MARKER = ".synthetic-writing"


def check_own_folder(out_dir: str | Path) -> None:
    """Refuse a folder holding files the generator did not write: one without its manifest (or
    its in-progress marker) and with visible entries, e.g. the user's real W-TALC features,
    which have the very names the synthetic set would overwrite."""
    out = Path(out_dir)
    if not out.is_dir() or (out / WRITING_MARKER).is_file():
        return
    try:
        ours = json.loads((out / MANIFEST_NAME).read_text()).get("synthetic") is True
    except (OSError, ValueError, AttributeError):
        ours = False
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if foreign and not ours:
        shown = ", ".join(foreign[:3]) + (
            f", ... ({len(foreign)} in all)" if len(foreign) > 3 else ""
        )
        raise ValueError(
            f"{out}: holds files the synthetic generator did not write ({shown}; no "
            f"{MANIFEST_NAME} of a synthetic set); give an empty or new folder"
        )


@dataclass(frozen=True)
class PendingSyntheticSet:
    """A synthetic W-TALC set to be written: what the synthetic_data node hands to its catalog
    dataset (`datasets.SyntheticFeatureSetDataset`), which streams it to disk on save.

    Built by `pending_synthetic_set`, which checks the dataset name and the parameters, so a
    typo fails in the node, before anything is written.
    """

    dataset_name: str
    params: dict

    def write(self, out_dir: str | Path) -> dict:
        """`synthesize` into `out_dir`, then `manifest.json` (last: its presence means complete).
        A folder of someone else's files is refused first (`check_own_folder`)."""
        out = Path(out_dir)
        check_own_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / WRITING_MARKER).touch()
        manifest = synthesize(out, self.dataset_name, self.params)
        atomic_write_text(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        (out / WRITING_MARKER).unlink()
        return manifest


def pending_synthetic_set(
    dataset_name: str = "Thumos14reduced", params: Mapping | None = None
) -> PendingSyntheticSet:
    """Validate a synthetic-set request (shipped dataset name, generator parameters)."""
    name = SHIPPED_DATASETS[_shipped_key(dataset_name)]
    return PendingSyntheticSet(name, SyntheticParams.from_dict(params).to_dict())
