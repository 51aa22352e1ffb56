from kedro.pipeline import Pipeline, node

from co2net_pipeline.pipelines.train_eval.pipeline import create_configuration_pipeline
from co2net_pipeline.studies import PARAM_GROUPS

from .nodes import train_eval_seeds


def study_inputs() -> dict[str, str]:
    """Node keyword → dataset of a study node: the catalog datasets one configuration of the
    train_eval chain reads (feature store, annotation tables, data split), every parameter
    group a configuration may override, and `params:studies`."""
    chain_inputs = create_configuration_pipeline().inputs()
    data = sorted(name for name in chain_inputs if not name.startswith("params:"))
    return {
        **{name: name for name in data},
        **{group: f"params:{group}" for group in PARAM_GROUPS},
        "studies": "params:studies",
    }


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the feature_ingestion and snippet_sampling outputs (run train_eval once first)."""
    return Pipeline(
        [
            node(
                train_eval_seeds,
                inputs=study_inputs(),
                outputs=["seed_study_metrics", "seed_study_table", "seed_study_table_md"],
                name="train_eval_seeds",
            )
        ],
        namespace="studies",
        prefix_datasets_with_namespace=False,
    )
