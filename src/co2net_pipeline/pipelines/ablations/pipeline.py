from kedro.pipeline import Pipeline, node

from co2net_pipeline.pipelines.train_eval_seeds.pipeline import study_inputs

from .nodes import run_ablations


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the feature_ingestion and snippet_sampling outputs (run train_eval once first)."""
    return Pipeline(
        [
            node(
                run_ablations,
                inputs=study_inputs(),
                outputs=["ablation_study_metrics", "ablation_table", "ablation_table_md"],
                name="run_ablations",
            )
        ],
        namespace="studies",
        prefix_datasets_with_namespace=False,
    )
