from kedro.pipeline import Pipeline

from co2net_pipeline.pipelines.train_eval.pipeline import study_pipeline

from .nodes import run_ablations


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the feature_ingestion and snippet_sampling outputs (run train_eval once first)."""
    return study_pipeline(
        run_ablations,
        ["ablation_study_metrics", "ablation_table", "ablation_table_md"],
        "run_ablations",
    )
