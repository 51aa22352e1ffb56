"""The embedded default dataset: SYNTHETIC two-stream snippet features on the REAL annotations.

The real I3D features are gigabytes behind a download link, so the project ships a generator
that writes a W-TALC-format feature file for the real THUMOS14 (or ActivityNet1.2) annotation
set: same videos, same subsets, same durations, same ground-truth segments, same weak labels.
Only the feature values are invented. Nothing trained on them says anything about real I3D.

Generative model
----------------
Video v has T = max(1, round(duration·25/16)) snippets (spec §1.1). Each modality m ∈ {r, f}
(RGB = columns 0..D−1, flow = D..2D−1) is, per snippet t (a row of (T, D)):

    x_t^m =  Σ_k  a_k · e_k(t) · (w_{c_k}^m · μ_{c_k}^m + j_k^m)      action instances k of v
           + b_v^m + [m = r] · γ · Σ_{c ∈ C_v} κ_c                    scene (+ RGB class context)
           + d_t^m                                                    slow scene drift
           + g^m ⊙ z_t   (on the n_irr irrelevant channels only)      shared, action-free factors
           + σ · ε_t^m                                                snippet noise

- e_k(t) = clip(min((t+½ − s_k)/ρ, (e_k − t − ½)/ρ) + ½, 0, 1): a trapezoid over the segment
  [s_k, e_k] = [t_start, t_end]·25/16 (snippet units), with linear onset/offset ramps of width
  ρ = `ramp_snippets` centred on the annotated boundaries, so boundaries are soft.
- μ_c^m ∈ R^D: class signature, non-zero on `signal_channels` channels drawn (per class and
  modality) from the D − n_irr action channels, values U(0.5, 1.5) (actions raise some
  channels, like post-ReLU I3D activations). w_c^m ~ signal_strength·U(0.6, 1.4): a class can be
  more visible in one modality than in the other.
- a_k ~ LogNormal(0, `instance_amplitude_std`): instance strength; j_k^m ~ N(0,
  `instance_jitter_std`² · signal_strength²) on the class's channels: instance variation.
- b_v^m ~ N(0, `background_std`²) per video and channel: the scene. κ_c ~ N(0, 1) on the action
  channels: the class's typical scene (billiard table, pool); C_v = classes of v's segments;
  γ = `context_strength`. The context appears in background snippets too, so RGB alone
  confuses "scene of class c" with "action c" — the attention has to resolve it with flow.
- d_t^m: per channel a stationary AR(1), d_t = φ d_{t−1} + √(1−φ²)·`drift_std`·ξ_t,
  φ = exp(−1/`drift_timescale`), independent per modality.
- z_t ∈ R^{n_irr}: stationary AR(1) with std `irrelevant_std` and timescale
  `irrelevant_timescale`, SHARED by both modalities (g^r, g^f: fixed per-channel gains ±U(0.8,
  1.5)) and unrelated to actions — the cross-modal redundancy that CCM re-calibration removes.
- ε ~ N(0, 1) i.i.d., σ = `noise_std`.

Determinism: every random draw comes from `np.random.Generator(PCG64)` seeded by a
`SeedSequence` of (seed, SHA-256 of the class name or video id), so a video's features depend
only on the seed, its own annotation and the parameters — not on the order or the subset of
videos generated. Output is bit-for-bit reproducible per seed on a given NumPy version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from co2net_pipeline.config import dataclass_from_dict
from co2net_pipeline.data.annotations import (
    SHIPPED_DATASETS,
    SNIPPETS_PER_SECOND,
    Annotations,
    expected_snippets,
    load_wtalc_annotations,
    shipped_annotations_dir,
)
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
    subset: list[str] | None = None
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
        for name in ("noise_std", "background_std", "drift_std", "irrelevant_std", "ramp_snippets"):
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
        chans = rng.choice(action_channels, size=params.active_channels, replace=False)
        weight = params.signal_strength * rng.uniform(0.6, 1.4)
        signature[offset + chans] = weight * rng.uniform(0.5, 1.5, size=chans.size)
    context = np.zeros(2 * d)
    context[action_channels] = rng.standard_normal(action_channels.size)
    return _ClassModel(signature, signature != 0, context)


def _ar1(rng: np.random.Generator, n: int, width: int, std: float, timescale: float) -> np.ndarray:
    """(n, width) stationary AR(1) noise with standard deviation `std`, correlation time `timescale`."""
    xi = rng.standard_normal((n, width))
    phi = float(np.exp(-1.0 / timescale))
    out = np.empty_like(xi)
    out[0] = xi[0]
    if n > 1:
        # y_t = φ y_{t−1} + √(1−φ²) ξ_t, started from the stationary law (y_0 = ξ_0).
        out[1:], _ = lfilter([np.sqrt(1.0 - phi**2)], [1.0, -phi], xi[1:], axis=0, zi=phi * xi[:1])
    return std * out


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
    x = params.noise_std * rng_noise.standard_normal((n_snippets, d2))

    labels = segments["label"].tolist()
    if labels:
        starts = segments["t_start_s"].to_numpy(np.float64) * SNIPPETS_PER_SECOND
        ends = segments["t_end_s"].to_numpy(np.float64) * SNIPPETS_PER_SECOND
        env = _envelopes(starts, ends, n_snippets, params.ramp_snippets)  # (T, K)
        sig = np.stack([classes[lab].signature for lab in labels])  # (K, 2D)
        support = np.stack([classes[lab].support for lab in labels])
        amp = rng_inst.lognormal(0.0, params.instance_amplitude_std, size=(len(labels), 1))
        jitter = params.instance_jitter_std * params.signal_strength
        jitter = jitter * rng_inst.standard_normal(sig.shape) * support
        x += env @ (amp * (sig + jitter))

    scene = params.background_std * rng_scene.standard_normal(d2)
    for lab in sorted(set(labels)):
        scene += params.context_strength * classes[lab].context
    x += scene
    x += _ar1(rng_drift, n_snippets, d2, params.drift_std, params.drift_timescale)
    if irrelevant.size:
        z = _ar1(
            rng_irr,
            n_snippets,
            irrelevant.size // 2,
            params.irrelevant_std,
            params.irrelevant_timescale,
        )
        x[:, irrelevant] += np.concatenate([z, z], axis=1) * gains
    return x.astype(np.float32)


def _dataset_layout(params: SyntheticParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(action channel indices within a modality, irrelevant column indices in 2D, their gains)."""
    rng = _rng(params.seed, _GLOBAL_STREAM, "layout")
    d = params.feature_dim
    irr = np.sort(rng.choice(d, size=params.irrelevant_channels, replace=False))
    action = np.setdiff1d(np.arange(d), irr)
    columns = np.concatenate([irr, irr + d])
    gains = rng.uniform(0.8, 1.5, size=columns.size) * rng.choice([-1.0, 1.0], size=columns.size)
    return action, columns, gains


def generate_features(
    annotations: Annotations, params: SyntheticParams | None = None
) -> list[np.ndarray]:
    """Synthetic features for every video of `annotations`, in annotation order.

    Returns a list of float32 arrays (T_i, 2·feature_dim) with T_i = max(1, round(duration_i·25/16)).
    `params.subset` is not applied here: restrict the annotations first with `select_subset`.
    Videos are generated independently, so a video's features are the same whatever else is
    generated.
    """
    params = params or SyntheticParams()
    action, irrelevant, gains = _dataset_layout(params)
    names = sorted(set(annotations.classlist) | set(annotations.segments["label"]))
    classes = {name: _class_model(name, params, action) for name in names}
    durations = annotations.videos["duration_s"].to_numpy(np.float64)
    if not np.all(np.isfinite(durations)):
        raise ValueError(
            f"{annotations.name}: every video needs a finite duration to size its features"
        )
    lengths = np.maximum(expected_snippets(durations), 1)
    by_video = dict(tuple(annotations.segments.groupby("video_id", sort=False)))
    empty = annotations.segments.iloc[:0]
    return [
        _video_features(vid, int(n), by_video.get(vid, empty), classes, irrelevant, gains, params)
        for vid, n in zip(annotations.videos["video_id"], lengths, strict=True)
    ]


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


def _object_array(items: Sequence) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # element-wise: np.array() would stack equal-shaped arrays
        out[i] = item
    return out


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=array.dtype.hasobject)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Put folder `tmp` at `target`; a previous `target` is removed only after the rename succeeds."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if keep is None:
            shutil.copytree(src, tmp)
        else:
            keep = np.asarray(keep, dtype=np.int64)
            tmp.mkdir()
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
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def features_filename(dataset_name: str) -> str:
    """W-TALC feature file name of a dataset: `<Name>-I3D-JOINTFeatures.npy`."""
    return f"{dataset_name}-I3D-JOINTFeatures.npy"


def write_wtalc_dataset(
    out_dir: str | Path,
    dataset_name: str,
    features: Sequence[np.ndarray],
    annotations_src_folder: str | Path,
    keep: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Write a W-TALC dataset folder: `<out_dir>/<Name>-I3D-JOINTFeatures.npy` + `<Name>-Annotations/`.

    features: one (T_i, 2D) array per video, in the order of the annotation rows `keep` (None:
    every row of `annotations_src_folder`). Both parts are written to temporary names and moved
    into place; the feature file goes last, so its presence means the dataset is complete.
    Returns {"features": path, "annotations": path}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_src = len(load_npy(Path(annotations_src_folder) / "videoname.npy"))
    n_expected = n_src if keep is None else len(keep)
    if len(features) != n_expected:
        raise ValueError(
            f"{annotations_src_folder}: {len(features)} feature arrays for {n_expected} annotated videos"
        )
    ann_dir = write_wtalc_annotations(
        annotations_src_folder, out_dir / f"{dataset_name}-Annotations", keep
    )
    feat_path = out_dir / features_filename(dataset_name)
    _save_npy_atomic(feat_path, _object_array(list(features)))
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
    files are named after the canonical W-TALC name. Returns a manifest of what was written.
    """
    import time

    key = _shipped_key(dataset_name)
    name = SHIPPED_DATASETS[key]
    synth = SyntheticParams.from_dict(params)
    src = shipped_annotations_dir(key)
    annotations, keep = select_subset(load_wtalc_annotations(src, name=name), synth.subset)
    started = time.perf_counter()
    features = generate_features(annotations, synth)
    paths = write_wtalc_dataset(
        output_dir, name, features, src, keep=None if synth.subset is None else keep
    )
    return {
        "synthetic": True,
        "dataset_name": name,
        "n_videos": len(features),
        "n_snippets": int(sum(len(f) for f in features)),
        "generator": synth.to_dict(),
        "seconds": time.perf_counter() - started,
        "features": str(paths["features"]),
        "annotations": str(paths["annotations"]),
    }


def synthesize_command(
    output_dir: str | Path = "data/01_raw/synthetic",
    dataset_name: str = "Thumos14reduced",
    params: dict | None = None,
) -> int:
    """`co2net synthesize`: `synthesize` plus a printed summary. Returns the exit status (0)."""
    manifest = synthesize(output_dir, dataset_name, params)
    name, gen = manifest["dataset_name"], manifest["generator"]
    size_mb = Path(manifest["features"]).stat().st_size / 2**20
    print(
        f"SYNTHETIC features (not real I3D) for {name}: {manifest['n_videos']} videos, "
        f"{manifest['n_snippets']} snippets,"
    )
    print(
        f"  {gen['feature_dim']} RGB + {gen['feature_dim']} flow channels, seed {gen['seed']}, "
        f"{manifest['seconds']:.1f} s"
    )
    print(f"  wrote {manifest['features']} ({size_mb:.1f} MiB)")
    print(f"  wrote {manifest['annotations']}/ (real {name} annotations)")
    return 0
