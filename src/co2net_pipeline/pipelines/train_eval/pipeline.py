"""train_eval: the whole method end to end (the default pipeline), one namespace per stage.

The namespaces only group the nodes (kedro viz collapses each stage into one box, node names
read `training.train_co2net`); dataset and parameter names stay global, so the catalog, the
MLflow metric names and every stage pipeline run on its own are unchanged.
"""

from collections.abc import Callable

from kedro.pipeline import Pipeline, node

from co2net_pipeline.params.overrides import PARAM_GROUPS
from co2net_pipeline.pipelines import (
    evaluation,
    feature_ingestion,
    inference,
    proposals,
    snippet_sampling,
    training,
)

# The stages in data-flow order: feature_ingestion → ... → evaluation.
STAGES = {
    "feature_ingestion": feature_ingestion,
    "snippet_sampling": snippet_sampling,
    "training": training,
    "inference": inference,
    "proposals": proposals,
    "evaluation": evaluation,
}


def stage(name: str) -> Pipeline:
    """One stage's pipeline in its namespace (datasets and parameters keep their names)."""
    return Pipeline(
        STAGES[name].create_pipeline(), namespace=name, prefix_datasets_with_namespace=False
    )


def create_configuration_pipeline() -> Pipeline:
    """train_eval from the data split on: sampling plan → training → test inference →
    proposals → evaluation. What one configuration of a study (seeds, ablations) runs."""
    return create_pipeline().from_inputs("data_split")


def create_pipeline(**kwargs) -> Pipeline:
    """Feature ingestion → snippet sampling → training → inference → proposals → evaluation."""
    return sum((stage(name) for name in STAGES), Pipeline([]))


def study_pipeline(func: Callable, outputs: list[str], name: str) -> Pipeline:
    """One study node (seeds, ablations) in the namespace `studies`. Its keyword inputs: the
    datasets one configuration of `create_configuration_pipeline` reads (feature store,
    annotation tables, data split), every parameter group a configuration may override
    (`params.overrides.PARAM_GROUPS`) and `studies` (params:studies)."""
    chain_inputs = create_configuration_pipeline().inputs()
    data = sorted(name for name in chain_inputs if not name.startswith("params:"))
    inputs = {
        **{dataset: dataset for dataset in data},
        **{group: f"params:{group}" for group in PARAM_GROUPS},
        "studies": "params:studies",
    }
    return Pipeline(
        [node(func, inputs=inputs, outputs=outputs, name=name)],
        namespace="studies",
        prefix_datasets_with_namespace=False,
    )
