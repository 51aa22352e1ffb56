from kedro.pipeline import Pipeline, node

from .nodes import train


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                train,
                inputs=[
                    "feature_store",
                    "videos",
                    "segments",
                    "ambiguous_intervals",
                    "classlist",
                    "data_split",
                    "sampling_plan",
                    "params:model",
                    "params:loss",
                    "params:training",
                    "params:proposals",
                    "params:evaluation",
                    "params:snippet_sampling",
                ],
                outputs=[
                    "trained_model",
                    "training_history",
                    "training_metrics",
                    "loss_curves_plot",
                    "test_curve",
                    "best_on_test",
                    "training_tags",
                ],
                name="train_co2net",
            )
        ]
    )
