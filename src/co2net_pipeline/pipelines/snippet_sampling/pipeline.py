from kedro.pipeline import Pipeline, node

from .nodes import build_sampling_plan, split_videos


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                split_videos,
                inputs=["videos", "classlist", "params:snippet_sampling"],
                outputs="data_split",
                name="split_videos",
            ),
            node(
                build_sampling_plan,
                inputs=[
                    "videos",
                    "classlist",
                    "data_split",
                    "params:snippet_sampling",
                    "params:training",
                ],
                outputs="sampling_plan",
                name="build_sampling_plan",
            ),
        ]
    )
