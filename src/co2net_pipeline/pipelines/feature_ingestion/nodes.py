"""Feature ingestion: pair the raw features with their annotations, validate, hand over the store."""

from __future__ import annotations

import logging

import pandas as pd

from co2net_pipeline.data.formats import AnnotationInput, FeatureSource, layout_summary
from co2net_pipeline.data.identity import SYNTHETIC, data_identity
from co2net_pipeline.data.ingest import pending_feature_store
from co2net_pipeline.data.store import PendingFeatureStore
from co2net_pipeline.data.validation import (
    degenerate_videos_line,
    report_to_markdown,
    validate_dataset,
)
from co2net_pipeline.params.schema import parse_group

logger = logging.getLogger(__name__)
# Quirks of the THUMOS14 annotations themselves (the reference keeps them too): one INFO line,
# not a warning on every ingestion; the validation report lists every video.
ANNOTATION_QUIRKS = frozenset(
    {"segments_past_duration", "label_disagreement", "empty_video_labels"}
)
# Empty (T = 0) and all-zero videos: one WARNING line with both counts.
DEGENERATE_VIDEOS = frozenset({"empty_videos", "all_zero_videos"})


def ingest_features(
    raw_features: FeatureSource,
    raw_annotations: AnnotationInput,
    params: dict,
) -> tuple[
    PendingFeatureStore, pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str], dict, str, dict
]:
    """Validate the raw features against their annotations (both from the catalog's raw layer).

    Raises `DataValidationError` (naming file, video and problem) before anything is written.
    Returns the pending feature store (written atomically by `FeatureStoreDataset`, skipped when
    the input fingerprint is unchanged), the videos / segments / ambiguous-interval tables, the
    class list, the validation report (JSON and Markdown) and the run tags naming the data read
    (`ingestion_tags`).
    """
    ingestion = parse_group("feature_ingestion", params)
    validation = ingestion.validation.config(feature_dim=ingestion.feature_dim)
    source = raw_features.paired(raw_annotations)
    annotations = raw_annotations.annotations
    fingerprint = source.fingerprint()
    dataset, report = validate_dataset(source, annotations, validation)
    report["fingerprint"] = fingerprint
    # what was read: the synthetic manifest beside the features, the annotations' name
    identity = data_identity(source, dataset.name, fingerprint, ingestion.data_source)
    report["data_source"] = identity["data_source"]
    report["synthetic"] = report["data_source"] == SYNTHETIC
    layout = layout_summary(source, annotations)  # annotations / Ambiguous_test.txt used
    report.update(layout)
    found = report.get("warnings", {})
    if degenerate := degenerate_videos_line(report):
        logger.warning("feature ingestion: %s", degenerate)
    for name, warning in found.items():
        if name not in ANNOTATION_QUIRKS | DEGENERATE_VIDEOS:
            logger.warning(
                "feature ingestion: %s (%s): %s", name, warning.get("count"), warning.get("message")
            )
    if quirks := [f"{n} ({found[n].get('count')})" for n in found if n in ANNOTATION_QUIRKS]:
        logger.info(
            "feature ingestion: known annotation quirks, kept as annotated: %s (validation_report)",
            ", ".join(quirks),
        )
    pending = pending_feature_store(dataset, fingerprint, validation, ingestion.dtype)
    return (
        pending,
        dataset.videos,
        dataset.segments,
        dataset.ambiguous,
        list(dataset.classlist),
        report,
        report_to_markdown(report),
        {**identity, **layout},
    )
