from kedro.pipeline import Pipeline, node

from .nodes import infer_test_set


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                infer_test_set,
                inputs=["trained_model", "feature_store", "data_split", "params:inference"],
                outputs="test_cas_store",
                name="infer_test_set",
            )
        ]
    )
