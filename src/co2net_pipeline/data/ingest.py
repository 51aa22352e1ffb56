"""Ingestion: features + annotations → validated feature store, tables and report.

`ingest` validates everything before writing anything, then writes (each file atomically):
    <tables_dir>/<slug>_videos.parquet      video_id, subset, duration_s, n_snippets,
                                            snippets_per_second, labels, usable, all_zero
    <tables_dir>/<slug>_segments.parquet    video_id, t_start_s, t_end_s, label, class_idx,
                                            start_snippet, end_snippet
    <tables_dir>/<slug>_classlist.parquet   class_idx, name
    <tables_dir>/<slug>_ambiguous.parquet   video_id, t_start_s, t_end_s
    <report_dir>/<slug>_validation_report.json / .md
    <store_path>                            the HDF5 feature store, written LAST: it carries the
                                            input fingerprint, so an interrupted run is redone
A re-run whose inputs (fingerprint), parameters and store dtype are unchanged, with every output
present, skips validation and writing and returns the saved tables (`skipped=True`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from co2net_pipeline.common.atomic import atomic_write
from co2net_pipeline.common.disk_space import require_free_space
from co2net_pipeline.data.formats import layout_summary, open_feature_source
from co2net_pipeline.data.store import (
    STORE_FORMAT,
    PendingFeatureStore,
    read_store_attrs,
    write_feature_store,
)
from co2net_pipeline.data.validation import (
    ValidatedDataset,
    ValidationParams,
    report_to_json,
    report_to_markdown,
    validate_dataset,
)

DEFAULT_STORE_DIR = Path("data/02_intermediate")
DEFAULT_TABLES_DIR = Path("data/03_primary")
DEFAULT_REPORT_DIR = Path("data/08_reporting")


def dataset_slug(name: str) -> str:
    """File-name stem of a dataset: lower case, runs of other characters → '_' ("ActivityNet1.2" → "activitynet1_2")."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "dataset"


@dataclass
class IngestResult:
    """What `ingest` produced (or found up to date).

    videos, segments, ambiguous: the tables (see `validation.ValidatedDataset`); classlist: names.
    report: the validation report dict. fingerprint: of the inputs. skipped: True when the
    existing outputs were current and nothing was written. paths: every output file.
    """

    videos: pd.DataFrame
    segments: pd.DataFrame
    classlist: list[str]
    ambiguous: pd.DataFrame
    report: dict
    store_path: Path
    fingerprint: str
    skipped: bool
    paths: dict[str, Path] = field(default_factory=dict)


def output_paths(
    slug: str, store_path: Path, tables_dir: Path, report_dir: Path
) -> dict[str, Path]:
    """Where `ingest` writes each output."""
    return {
        "store": store_path,
        "videos": tables_dir / f"{slug}_videos.parquet",
        "segments": tables_dir / f"{slug}_segments.parquet",
        "classlist": tables_dir / f"{slug}_classlist.parquet",
        "ambiguous": tables_dir / f"{slug}_ambiguous.parquet",
        "report_json": report_dir / f"{slug}_validation_report.json",
        "report_md": report_dir / f"{slug}_validation_report.md",
    }


def refuse_input_as_output(outputs: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """Raise ValueError when an output is an input or lies inside an input folder: the store
    would replace the user's features (a W-TALC `.npy` turned into HDF5). Paths are compared
    as given and with symlinks resolved."""
    for out in map(Path, outputs):
        for src in map(Path, inputs):
            pairs = ((out.absolute(), src.absolute()), (out.resolve(), src.resolve()))
            if any(o == i for o, i in pairs):
                raise ValueError(f"{out}: is an input ({src}); write the output elsewhere")
            if any(o.is_relative_to(i) for o, i in pairs):
                raise ValueError(
                    f"{out}: lies inside the input folder {src}; write the output elsewhere"
                )


def _atomic_write(path: Path, write) -> None:
    atomic_write(path, write)


def write_tables(dataset: ValidatedDataset, report: Mapping, paths: Mapping[str, Path]) -> None:
    """Write the tables and the report (each atomically) to `paths` from `output_paths`."""
    classlist = pd.DataFrame(
        {"class_idx": np.arange(len(dataset.classlist)), "name": dataset.classlist}
    )
    for key, table in (
        ("videos", dataset.videos),
        ("segments", dataset.segments),
        ("classlist", classlist),
        ("ambiguous", dataset.ambiguous),
    ):
        _atomic_write(paths[key], lambda p, t=table: t.to_parquet(p, index=False))
    _atomic_write(paths["report_json"], lambda p: p.write_text(report_to_json(report)))
    _atomic_write(paths["report_md"], lambda p: p.write_text(report_to_markdown(report)))


def read_videos_table(path: str | Path) -> pd.DataFrame:
    """The videos table from parquet, with `labels` back as Python lists of str."""
    videos = pd.read_parquet(path)
    videos["labels"] = [[str(x) for x in labs] for labs in videos["labels"]]
    return videos


def _params_json(params: ValidationParams) -> str:
    return json.dumps(params.to_dict(), sort_keys=True)


def store_attrs(dataset: ValidatedDataset, fingerprint: str, params: ValidationParams) -> dict:
    """Root attributes of the feature store; `fingerprint` + `params_json` decide skipping."""
    return {
        "fingerprint": fingerprint,
        "params_json": _params_json(params),
        "dataset_name": dataset.name,
        "source_format": dataset.source.format,
        "source_path": str(dataset.source.path),
    }


def store_bytes(dataset: ValidatedDataset, dtype: str = "float32") -> int:
    """Bytes the feature store's arrays take on disk (HDF5's own overhead is ~1 KiB a video)."""
    per_value = np.dtype(dtype).itemsize * 2 * dataset.feature_dim
    return int(dataset.videos["n_snippets"].sum()) * per_value + 2048 * len(dataset.videos)


def pending_feature_store(
    dataset: ValidatedDataset,
    fingerprint: str,
    params: ValidationParams | Mapping | None = None,
    dtype: str = "float32",
) -> PendingFeatureStore:
    """The store for a Kedro `FeatureStoreDataset` to save (skipped there when already current)."""
    if not isinstance(params, ValidationParams):
        params = ValidationParams.from_dict(params)
    return PendingFeatureStore(
        dataset.iter_features,
        store_attrs(dataset, fingerprint, params),
        dtype,
        expected_bytes=store_bytes(dataset, dtype),
    )


def _skipped_result(paths: dict[str, Path], store_path: Path, fingerprint: str) -> IngestResult:
    """The outputs of an earlier ingestion of the same inputs, read back (nothing written)."""
    return IngestResult(
        videos=read_videos_table(paths["videos"]),
        segments=pd.read_parquet(paths["segments"]),
        classlist=pd.read_parquet(paths["classlist"])["name"].astype(str).tolist(),
        ambiguous=pd.read_parquet(paths["ambiguous"]),
        report=json.loads(paths["report_json"].read_text()),
        store_path=store_path,
        fingerprint=fingerprint,
        skipped=True,
        paths=paths,
    )


def ingest(
    features_path: str | Path,
    annotations_path: str | Path | None = None,
    fmt: str = "wtalc",
    dataset_name: str | None = None,
    store_path: str | Path | None = None,
    tables_dir: str | Path | None = None,
    params: ValidationParams | Mapping | None = None,
    *,
    report_dir: str | Path | None = None,
    dtype: str = "float32",
    force: bool = False,
) -> IngestResult:
    """Validate features + annotations, then write the feature store, tables and report.

    Defaults: store `data/02_intermediate/<slug>_features.h5`, tables `data/03_primary/`,
    report `data/08_reporting/` (relative to the working directory, i.e. the project root).
    Raises `DataValidationError` (nothing written) on invalid input; `force=True` rewrites even
    when the outputs are current.
    """
    if not isinstance(params, ValidationParams):
        params = ValidationParams.from_dict(params)
    source, annotations = open_feature_source(features_path, fmt, annotations_path, dataset_name)
    try:
        slug = dataset_slug(annotations.name)
        store_path = Path(store_path) if store_path else DEFAULT_STORE_DIR / f"{slug}_features.h5"
        paths = output_paths(
            slug,
            store_path,
            Path(tables_dir) if tables_dir else DEFAULT_TABLES_DIR,
            Path(report_dir) if report_dir else DEFAULT_REPORT_DIR,
        )
        refuse_input_as_output(paths.values(), (source.path, *source.annotation_paths))
        fingerprint = source.fingerprint()
        params_json = _params_json(params)
        existing = read_store_attrs(store_path)
        current = (
            not force
            and existing.get("format") == STORE_FORMAT
            and existing.get("fingerprint") == fingerprint
            and existing.get("params_json") == params_json
            and existing.get("dtype") == dtype
            and all(p.is_file() for p in paths.values())
        )
        if current:
            return _skipped_result(paths, store_path, fingerprint)

        dataset, report = validate_dataset(source, annotations, params)
        report["fingerprint"] = fingerprint
        report.update(layout_summary(source, annotations))
        # a full disk is found before the first table is written, not after the tables
        needed = store_bytes(dataset, dtype)
        require_free_space(store_path, needed, "the feature store")
        write_tables(dataset, report, paths)
        write_feature_store(
            store_path,
            dataset.iter_features(),
            dtype=dtype,
            attrs=store_attrs(dataset, fingerprint, params),
            expected_bytes=needed,
        )
    finally:
        source.close()
    return IngestResult(
        videos=dataset.videos,
        segments=dataset.segments,
        classlist=dataset.classlist,
        ambiguous=dataset.ambiguous,
        report=report,
        store_path=store_path,
        fingerprint=fingerprint,
        skipped=False,
        paths=paths,
    )
