"""Proposal generation (spec §5) from the stored test-set CAS and attention."""

from __future__ import annotations

import logging

import pandas as pd

from co2net_pipeline.method.proposals import ProposalParams, localize_videos, video_scores_table
from co2net_pipeline.tracking.records import set_run_tags

logger = logging.getLogger(__name__)


def generate_proposals(
    test_cas_store: dict, classlist: list[str], ambiguous_intervals: pd.DataFrame, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Detections of every test video (snippets and seconds) and the video-level class scores."""
    proposal_params = ProposalParams.from_dict(params)
    outputs = {vid: (arrays["cas"], arrays["attention"]) for vid, arrays in test_cas_store.items()}
    ambiguous = ambiguous_intervals if proposal_params.ambiguous_filter else None
    if not proposal_params.ambiguous_filter:
        state = "off (proposals.ambiguous_filter: false)"
    elif len(ambiguous_intervals):
        state = f"on ({len(ambiguous_intervals)} ambiguous intervals)"
    else:
        state = "off (the dataset has no ambiguous intervals)"
    logger.info("ambiguous filter %s", state)
    set_run_tags({"ambiguous_filter": state})
    detections = localize_videos(outputs, classlist, proposal_params, ambiguous)
    scores = video_scores_table(outputs, classlist, proposal_params.topk_divisor)
    return detections, scores
