"""Proposal generation (spec §5) from the stored test-set CAS and attention."""

from __future__ import annotations

import logging

import pandas as pd

from co2net_pipeline.method.proposals import localize_videos, video_scores_table
from co2net_pipeline.params.schema import parse_config

logger = logging.getLogger(__name__)


def generate_proposals(
    test_cas_store: dict, classlist: list[str], ambiguous_intervals: pd.DataFrame, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Detections of every test video (snippets and seconds), the video-level class scores and
    the run tag saying whether the ambiguous filter was on (`proposal_tags`)."""
    proposal_params = parse_config("proposals", params)
    outputs = {vid: (arrays["cas"], arrays["attention"]) for vid, arrays in test_cas_store.items()}
    ambiguous = ambiguous_intervals if proposal_params.ambiguous_filter else None
    if not proposal_params.ambiguous_filter:
        state = "off (proposals.ambiguous_filter: false)"
    elif len(ambiguous_intervals):
        state = f"on ({len(ambiguous_intervals)} ambiguous intervals)"
    else:
        state = "off (the dataset has no ambiguous intervals)"
    logger.info("ambiguous filter %s", state)
    detections = localize_videos(outputs, classlist, proposal_params, ambiguous)
    scores = video_scores_table(outputs, classlist, proposal_params.topk_divisor)
    return detections, scores, {"ambiguous_filter": state}
