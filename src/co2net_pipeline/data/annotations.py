"""Annotation sets: the W-TALC `.npy` folder, ActivityNet-style JSON and CSV ground truth.

Every loader returns the same `Annotations` tables, so that the evaluator, the sampler and the
synthetic generator never look at file formats.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from co2net_pipeline.data.safe_npy import load_npy

# I3D snippets are 16 frames at 25 fps.
SNIPPETS_PER_SECOND = 25.0 / 16.0
SHIPPED_DATASETS = {"thumos14": "Thumos14reduced", "activitynet12": "ActivityNet1.2"}
DEFAULT_TEST_SUBSET = {"thumos14": "test", "activitynet12": "validation"}


@dataclass(frozen=True)
class Annotations:
    """One dataset's annotations.

    videos: one row per video in file order: video_id, subset, duration_s, labels (list[str],
        the video-level weak label).
    segments: one row per ground-truth instance: video_id, t_start_s, t_end_s, label.
    classlist: class names, index = class id (background = len(classlist) in the model).
    ambiguous: THUMOS14 ambiguous intervals: video_id, t_start_s, t_end_s (may be empty).
    """

    name: str
    classlist: list[str]
    videos: pd.DataFrame
    segments: pd.DataFrame
    ambiguous: pd.DataFrame = field(default_factory=lambda: _empty_intervals())
    # False for a ground-truth CSV: its `duration_s` is the last segment's end, not a duration
    durations_known: bool = True

    def subset(self, subset: str | None) -> Annotations:
        """The annotations of one subset (`None` keeps everything)."""
        if subset is None:
            return self
        videos = self.videos[self.videos["subset"] == subset].reset_index(drop=True)
        if videos.empty:
            known = sorted(self.videos["subset"].unique())
            raise ValueError(f"{self.name}: no video in subset '{subset}' (subsets: {known})")
        keep = set(videos["video_id"])
        segments = self.segments[self.segments["video_id"].isin(keep)].reset_index(drop=True)
        ambiguous = self.ambiguous[self.ambiguous["video_id"].isin(keep)].reset_index(drop=True)
        return replace(self, videos=videos, segments=segments, ambiguous=ambiguous)


def _empty_intervals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "video_id": pd.Series(dtype=str),
            "t_start_s": pd.Series(dtype=float),
            "t_end_s": pd.Series(dtype=float),
        }
    )


def seconds_to_snippets(seconds) -> np.ndarray:
    """Seconds → snippet index as the reference does: round(t·25/16), round half to even."""
    return np.round(np.asarray(seconds, dtype=np.float64) * SNIPPETS_PER_SECOND).astype(np.int64)


def expected_snippets(duration_s) -> np.ndarray:
    """Snippet count a video of this duration should have: round(duration·25/16)."""
    return seconds_to_snippets(duration_s)


def shipped_annotations_dir(dataset: str) -> Path:
    """Folder of the annotation files shipped with the package (`thumos14`, `activitynet12`)."""
    if dataset not in SHIPPED_DATASETS:
        raise ValueError(
            f"unknown shipped dataset '{dataset}' (choose from {sorted(SHIPPED_DATASETS)})"
        )
    return Path(str(resources.files("co2net_pipeline.data") / "annotations" / dataset))


def load_shipped_annotations(dataset: str) -> Annotations:
    """The real THUMOS14 / ActivityNet1.2 annotations shipped inside the package."""
    return load_wtalc_annotations(shipped_annotations_dir(dataset), name=dataset)


# A byte-order mark some editors put before the first text: "\ufeffBaseballPitch" would be a
# class of its own.
BOM = "\ufeff"


def _decode(value, source: Path, entry: int) -> str:
    """One string of an annotation array (bytes are UTF-8), without a leading BOM."""
    if isinstance(value, bytes | np.bytes_):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{source}: entry {entry}: not UTF-8 text ({exc.reason} at byte {exc.start} "
                f"of {bytes(value)!r})"
            ) from None
    return str(value).removeprefix(BOM)


def _strings(values, source: Path) -> list[str]:
    return [_decode(v, source, i) for i, v in enumerate(values)]


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file (a leading BOM dropped); a decoding error names the file and line."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text ({exc.reason}, byte 0x{data[exc.start]:02x})"
        ) from None


def load_wtalc_annotations(folder: str | Path, name: str | None = None) -> Annotations:
    """Read a W-TALC `<Name>-Annotations/` folder (spec §1.1).

    Segments stay in seconds and in file order; `labels_all` is the weak label. Object arrays are
    read with the restricted unpickler (no code execution).
    """
    folder = Path(folder)
    name = name or folder.name
    required = ["videoname", "subset", "segments", "labels", "labels_all", "classlist", "duration"]
    missing = [f"{f}.npy" for f in required if not (folder / f"{f}.npy").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: annotation folder lacks {', '.join(missing)}")
    arrays = {f: load_npy(folder / f"{f}.npy") for f in required}
    n = len(arrays["videoname"])
    for key in required:
        if key != "classlist" and len(arrays[key]) != n:
            raise ValueError(
                f"{folder / (key + '.npy')}: {len(arrays[key])} entries, videoname.npy has {n}"
            )
    path = {key: folder / f"{key}.npy" for key in required}
    video_ids = _strings(arrays["videoname"], path["videoname"])
    classlist = _strings(arrays["classlist"], path["classlist"])
    videos = pd.DataFrame(
        {
            "video_id": video_ids,
            "subset": _strings(arrays["subset"], path["subset"]),
            "duration_s": np.asarray(arrays["duration"], dtype=np.float64).reshape(n),
            "labels": [_strings(labs, path["labels_all"]) for labs in arrays["labels_all"]],
        }
    )
    rows = []
    for i, (vid, segs, labs) in enumerate(
        zip(video_ids, arrays["segments"], arrays["labels"], strict=True)
    ):
        segs = list(segs)
        labs = list(labs)
        if len(segs) != len(labs):
            raise ValueError(
                f"{folder}: video {vid} has {len(segs)} segments but {len(labs)} segment labels"
            )
        for seg, lab in zip(segs, labs, strict=True):
            rows.append((vid, float(seg[0]), float(seg[1]), _decode(lab, path["labels"], i)))
    segments = pd.DataFrame(rows, columns=["video_id", "t_start_s", "t_end_s", "label"])
    ambiguous = _empty_intervals()
    amb_file = folder / "Ambiguous_test.txt"
    if amb_file.is_file():
        ambiguous = load_ambiguous_intervals(amb_file)
    return Annotations(name, classlist, videos, segments, ambiguous)


def _examples(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def annotation_differences(ours: Annotations, shipped: Annotations) -> list[str]:
    """What differs between a user's annotations and the shipped ones, one line per aspect.

    Compares the class list, the video names, their order, durations, video-level labels and
    segments (videos in both sets). Empty when they agree. Set and array operations throughout:
    the 7,202 shipped ActivityNet1.2 videos compare in well under a second.
    """
    lines = []
    if list(ours.classlist) != list(shipped.classlist):
        pairs = list(zip(ours.classlist, shipped.classlist, strict=False))
        first = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
        lines.append(
            f"class list: {len(ours.classlist)} classes vs {len(shipped.classlist)} shipped, "
            f"first difference at index {first}"
        )
    # A repeated id is named here and compared once; validation then refuses it in one line.
    repeated = ours.videos["video_id"][ours.videos["video_id"].duplicated()].unique().tolist()
    if repeated:
        lines.append(f"video names: {len(repeated)} repeated ({_examples(repeated)})")
        ours = replace(ours, videos=ours.videos.drop_duplicates("video_id"))
    common, name_lines = _video_name_differences(
        ours.videos["video_id"].tolist(), shipped.videos["video_id"].drop_duplicates().tolist()
    )
    lines += name_lines
    a = ours.videos.set_index("video_id").loc[common]
    b = shipped.videos.set_index("video_id").loc[common]
    gap = np.abs(a["duration_s"].to_numpy(float) - b["duration_s"].to_numpy(float))
    changed = [v for v, g in zip(common, gap, strict=True) if not g <= 1e-6]
    if changed:
        lines.append(
            f"durations: {len(changed)} video(s) differ, by up to {np.nanmax(gap):.3f} s "
            f"({_examples(changed)})"
        )
    relabelled = [
        v
        for v, x, y in zip(common, a["labels"], b["labels"], strict=True)
        if sorted(x) != sorted(y)
    ]
    if relabelled:
        lines.append(f"labels: {len(relabelled)} video(s) differ ({_examples(relabelled)})")
    moved = _videos_with_other_segments(ours.segments, shipped.segments, common)
    if moved:
        lines.append(f"segments: {len(moved)} video(s) differ ({_examples(moved)})")
    return lines


def _video_name_differences(ids: list, ref_ids: list) -> tuple[list, list[str]]:
    """(the videos of `ids` also in `ref_ids`, in `ids` order; the lines on names and order).
    ids, ref_ids: unique video ids, ours and the shipped ones."""
    id_set, ref_set = set(ids), set(ref_ids)
    only_ours = [v for v in ids if v not in ref_set]
    only_shipped = [v for v in ref_ids if v not in id_set]
    lines = []
    if only_ours:
        lines.append(
            f"video names: {len(only_ours)} not in the shipped set ({_examples(only_ours)})"
        )
    if only_shipped:
        lines.append(
            f"video names: {len(only_shipped)} shipped video(s) missing ({_examples(only_shipped)})"
        )
    common = [v for v in ids if v in ref_set]
    ref_common = [v for v in ref_ids if v in id_set]
    if common != ref_common:
        first = next(i for i, (a, b) in enumerate(zip(common, ref_common, strict=True)) if a != b)
        lines.append(
            f"video order: differs from position {first} ({common[first]} vs {ref_common[first]})"
        )
    return common, lines


def _videos_with_other_segments(ours: pd.DataFrame, shipped: pd.DataFrame, common: list) -> list:
    """The videos of `common` (in its order) whose multisets of segments (start and end rounded
    to 1e-6 s, label) differ between the two segment tables. Both tables are put in one
    canonical order (video, start, end, label) and compared row by row where a video has as
    many segments on both sides; a NaN time or label never equals anything (its video differs)."""
    index = pd.Index(common)
    labels = pd.concat([ours["label"], shipped["label"]], ignore_index=True)
    codes = pd.factorize(labels)[0]
    sides = []
    for table, code in ((ours, codes[: len(ours)]), (shipped, codes[len(ours) :])):
        pos = index.get_indexer(table["video_id"])
        start = table["t_start_s"].round(6).to_numpy(float)
        end = table["t_end_s"].round(6).to_numpy(float)
        keep = pos >= 0
        pos, start, end, code = pos[keep], start[keep], end[keep], code[keep]
        order = np.lexsort((code, end, start, pos))
        sides.append((pos[order], start[order], end[order], code[order]))
    (pa, sa, ea, ca), (pb, sb, eb, cb) = sides
    differ = np.bincount(pa, minlength=len(common)) != np.bincount(pb, minlength=len(common))
    # the rows of the videos with as many segments on both sides line up one to one
    ka, kb = ~differ[pa], ~differ[pb]
    mismatch = (sa[ka] != sb[kb]) | (ea[ka] != eb[kb]) | (ca[ka] != cb[kb]) | (ca[ka] < 0)
    differ[pa[ka][mismatch]] = True
    return [v for v, d in zip(common, differ, strict=True) if d]


def load_ambiguous_intervals(path: str | Path) -> pd.DataFrame:
    """THUMOS14 `Ambiguous_test.txt`: `<video>  <start_s> <end_s>` per line (any whitespace)."""
    rows = []
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise ValueError(f"{path}:{lineno}: expected '<video> <start> <end>', got {line!r}")
        rows.append((parts[0], float(parts[1]), float(parts[2])))
    if not rows:
        return _empty_intervals()
    return pd.DataFrame(rows, columns=["video_id", "t_start_s", "t_end_s"])


def json_number(value: Any, what: str) -> float:
    """A JSON number as float; a string or a boolean is refused (`float("1")`, `float(True)`
    would read `"segment": "12"` as [1, 2] and `"score": true` as 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} is {value!r}, not a number")
    return float(value)


def json_segment(segment: Any) -> tuple[float, float]:
    """(start, end) of an ActivityNet `"segment": [start, end]` of two JSON numbers."""
    if not isinstance(segment, list) or len(segment) != 2:
        raise TypeError(f"segment is {segment!r}, not a list [start, end]")
    return json_number(segment[0], "segment start"), json_number(segment[1], "segment end")


def load_activitynet_json(path: str | Path, name: str | None = None) -> Annotations:
    """ActivityNet-style JSON: `{"database": {video_id: {"subset", "duration", "annotations":
    [{"segment": [s, e], "label": name}]}}}` (seconds). The class list is the sorted label set;
    the weak label of a video is the sorted set of its segment labels.
    """
    path = Path(path)
    try:
        data = json.loads(read_text_file(path))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from exc
    except RecursionError as exc:  # json's parser recurses once per nesting level
        raise ValueError(f"{path}: not a readable JSON file (nested too deeply)") from exc
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise ValueError(f"{path}: expected an object with a 'database' mapping of videos")
    videos, rows = [], []
    for vid, entry in data["database"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: video {vid}: entry is not an object")
        anns = entry.get("annotations", [])
        labels = []
        for i, ann in enumerate(anns):
            try:
                start, end = json_segment(ann["segment"])
                label = str(ann["label"])
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                # OverflowError: a JSON integer beyond float range (10**400)
                problem = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(
                    f"{path}: video {vid}: annotation {i} is malformed ({problem})"
                ) from exc
            if not (np.isfinite(start) and np.isfinite(end)):
                raise ValueError(
                    f"{path}: video {vid}: annotation {i} has a non-finite segment {[start, end]}"
                )
            rows.append((vid, start, end, label))
            labels.append(label)
        duration = entry.get("duration")
        videos.append(
            (
                vid,
                str(entry.get("subset", "")),
                float(duration) if duration is not None else np.nan,
                sorted(set(labels)),
            )
        )
    videos_df = pd.DataFrame(videos, columns=["video_id", "subset", "duration_s", "labels"])
    segments = pd.DataFrame(rows, columns=["video_id", "t_start_s", "t_end_s", "label"])
    classlist = sorted(segments["label"].unique().tolist())
    return Annotations(name or path.stem, classlist, videos_df, segments)


def load_ground_truth_csv(path: str | Path, name: str | None = None) -> Annotations:
    """A user's ground truth CSV `video_id,t_start,t_end,label[,subset]` in seconds.

    `subset` (optional, one value per video, e.g. `train` / `test`) gives the train/test split;
    without it every video is in subset `all`. A CSV has no durations (`durations_known`)."""
    path = Path(path)
    try:
        text = io.StringIO(read_text_file(path))
        table = pd.read_csv(text, dtype={"video_id": str, "label": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = {"video_id", "t_start", "t_end", "label"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {sorted(missing)}; expected video_id,t_start,t_end,label"
        )
    for col in ("t_start", "t_end"):
        values = pd.to_numeric(table[col], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: row {row + 2} (video {table['video_id'].iloc[row]}): {col} is not a number"
            )
        table[col] = values.astype(np.float64)
    segments = table.rename(columns={"t_start": "t_start_s", "t_end": "t_end_s"})[
        ["video_id", "t_start_s", "t_end_s", "label"]
    ]
    groups = segments.groupby("video_id", sort=False)
    videos = pd.DataFrame(
        {
            "video_id": list(groups.groups.keys()),
            "subset": _csv_subsets(path, table) if "subset" in table else "all",
            "duration_s": groups["t_end_s"].max().to_numpy(),
            "labels": [sorted(set(g["label"])) for _, g in groups],
        }
    )
    classlist = sorted(segments["label"].unique().tolist())
    return Annotations(name or path.stem, classlist, videos, segments, durations_known=False)


def _csv_subsets(path: Path, table: pd.DataFrame) -> list[str]:
    """The `subset` of each video of a ground-truth CSV, in first-appearance order; a video
    given two subsets, or none, is a ValueError naming it."""
    subsets = table["subset"].astype("string").str.strip()
    if subsets.isna().any() or (subsets == "").any():
        row = int(np.flatnonzero((subsets.isna() | (subsets == "")).to_numpy())[0])
        raise ValueError(f"{path}: row {row + 2} (video {table['video_id'].iloc[row]}): no subset")
    per_video = subsets.groupby(table["video_id"], sort=False).unique()
    mixed = per_video[per_video.map(len) > 1]
    if len(mixed):
        video, found = mixed.index[0], sorted(mixed.iloc[0])
        raise ValueError(f"{path}: video {video}: rows in several subsets {found}; give one")
    return [str(found[0]) for found in per_video]


def save_wtalc_annotations(annotations: Annotations, folder: str | Path) -> Path:
    """Write `annotations` as a W-TALC `<Name>-Annotations/` folder (the inverse of `load_wtalc_annotations`).

    Writes videoname, subset, duration ((N, 1) as THUMOS14), segments, labels, labels_all and
    classlist `.npy` files, plus `Ambiguous_test.txt` when there are ambiguous intervals. Existing
    files of the same names are overwritten; the folder is created if needed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos = annotations.videos
    n = len(videos)
    by_video = dict(tuple(annotations.segments.groupby("video_id", sort=False)))

    def objects(items: list) -> np.ndarray:
        out = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):  # element-wise: keeps ragged lists as Python lists
            out[i] = item
        return out

    segments, labels = [], []
    for vid in videos["video_id"]:
        group = by_video.get(vid)
        if group is None:
            segments.append([])
            labels.append([])
        else:
            times = zip(group["t_start_s"], group["t_end_s"], strict=True)
            segments.append([[float(s), float(e)] for s, e in times])
            labels.append([str(x) for x in group["label"]])
    arrays = {
        "videoname": np.array([str(v).encode() for v in videos["video_id"]], dtype=np.bytes_),
        "subset": np.array([str(s).encode() for s in videos["subset"]], dtype=np.bytes_),
        "duration": videos["duration_s"].to_numpy(np.float64).reshape(n, 1),
        "segments": objects(segments),
        "labels": objects(labels),
        "labels_all": objects([[str(x) for x in labs] for labs in videos["labels"]]),
        "classlist": np.array([c.encode() for c in annotations.classlist], dtype=np.bytes_),
    }
    for key, array in arrays.items():
        np.save(folder / f"{key}.npy", array, allow_pickle=array.dtype.hasobject)
    if len(annotations.ambiguous):
        lines = [
            f"{r.video_id}  {float(r.t_start_s)!r} {float(r.t_end_s)!r}\n"
            for r in annotations.ambiguous.itertuples()
        ]
        (folder / "Ambiguous_test.txt").write_text("".join(lines))
    return folder
