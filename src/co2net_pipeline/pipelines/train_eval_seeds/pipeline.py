from kedro.pipeline import Pipeline, node

from .nodes import train_eval_seeds

# The catalog data and parameter groups a study configuration needs (node keyword → dataset).
STUDY_INPUTS = {
    "feature_store": "feature_store",
    "videos": "videos",
    "segments": "segments",
    "ambiguous_intervals": "ambiguous_intervals",
    "classlist": "classlist",
    "data_split": "data_split",
    "model": "params:model",
    "loss": "params:loss",
    "training": "params:training",
    "snippet_sampling": "params:snippet_sampling",
    "inference": "params:inference",
    "proposals": "params:proposals",
    "evaluation": "params:evaluation",
    "studies": "params:studies",
}


def create_pipeline(**kwargs) -> Pipeline:
    """Needs the feature_ingestion and snippet_sampling outputs (run train_eval once first)."""
    return Pipeline(
        [
            node(
                train_eval_seeds,
                inputs=STUDY_INPUTS,
                outputs=["seed_study_metrics", "seed_study_table", "seed_study_table_md"],
                name="train_eval_seeds",
            )
        ]
    )
