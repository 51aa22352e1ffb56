from kedro.pipeline import Pipeline, node

from .nodes import generate_synthetic_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                generate_synthetic_dataset,
                inputs="params:synthetic_data",
                outputs="synthetic_features",
                name="generate_synthetic_dataset",
            )
        ]
    )
