from kedro.pipeline import Pipeline, node

from .nodes import (
    chunk,
    concatenate_streams,
    decode_and_resample,
    extract_flow_features,
    extract_rgb_features,
    make_flow_clips,
    make_rgb_clips,
    resize,
)

PARAMS = "params:feature_extraction"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                decode_and_resample,
                inputs=["raw_videos", PARAMS],
                outputs="resampled_frames",
                name="decode_and_resample",
            ),
            node(resize, ["resampled_frames", PARAMS], "resized_frames", name="resize"),
            node(chunk, "resized_frames", "frame_chunks", name="chunk"),
            node(make_rgb_clips, ["frame_chunks", PARAMS], "rgb_clips", name="make_rgb_clips"),
            node(make_flow_clips, ["frame_chunks", PARAMS], "flow_clips", name="make_flow_clips"),
            node(
                extract_rgb_features,
                inputs=["rgb_clips", PARAMS],
                outputs="rgb_i3d_features",
                name="extract_rgb_features",
            ),
            node(
                extract_flow_features,
                inputs=["flow_clips", PARAMS],
                outputs="flow_i3d_features",
                name="extract_flow_features",
            ),
            node(
                concatenate_streams,
                inputs=["rgb_i3d_features", "flow_i3d_features", "raw_videos"],
                outputs=["extracted_features", "extraction_report", "extraction_report_md"],
                name="concatenate_streams",
            ),
        ]
    )
