from kedro.pipeline import Pipeline

from co2net_pipeline.pipelines import (
    evaluation,
    feature_ingestion,
    inference,
    proposals,
    snippet_sampling,
    training,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Feature ingestion → snippet sampling → training → inference → proposals → evaluation."""
    return (
        feature_ingestion.create_pipeline()
        + snippet_sampling.create_pipeline()
        + training.create_pipeline()
        + inference.create_pipeline()
        + proposals.create_pipeline()
        + evaluation.create_pipeline()
    )
