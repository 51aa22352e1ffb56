from kedro.pipeline import Pipeline, node

from .nodes import ingest_features


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                ingest_features,
                inputs=["raw_features", "raw_annotations", "params:feature_ingestion"],
                outputs=[
                    "feature_store",
                    "videos",
                    "segments",
                    "ambiguous_intervals",
                    "classlist",
                    "validation_report",
                    "validation_report_md",
                    "ingestion_tags",
                ],
                name="ingest_features",
            )
        ]
    )
