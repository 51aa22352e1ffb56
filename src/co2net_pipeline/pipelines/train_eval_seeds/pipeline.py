from kedro.pipeline import Pipeline

from co2net_pipeline.pipelines.train_eval.pipeline import study_pipeline

from .nodes import train_eval_seeds


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the feature_ingestion and snippet_sampling outputs (run train_eval once first)."""
    return study_pipeline(
        train_eval_seeds,
        ["seed_study_metrics", "seed_study_table", "seed_study_table_md"],
        "train_eval_seeds",
    )
