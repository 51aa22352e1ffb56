from kedro.pipeline import Pipeline, node

from .nodes import evaluate_proposals, plot_video_examples


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_proposals,
                inputs=[
                    "proposals",
                    "segments",
                    "videos",
                    "classlist",
                    "params:evaluation",
                    "params:snippet_sampling",
                ],
                outputs=[
                    "detection_metrics",
                    "evaluation_report",
                    "per_class_ap",
                    "detections_activitynet_json",
                    "map_vs_tiou_plot",
                ],
                name="evaluate_detections",
            ),
            node(
                plot_video_examples,
                inputs=[
                    "test_cas_store",
                    "proposals",
                    "segments",
                    "videos",
                    "classlist",
                    "params:evaluation",
                    "params:snippet_sampling",
                ],
                outputs="video_plots",
                name="plot_video_examples",
            ),
        ]
    )
