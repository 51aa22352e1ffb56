from kedro.pipeline import Pipeline, node

from .nodes import generate_proposals


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                generate_proposals,
                inputs=["test_cas_store", "classlist", "ambiguous_intervals", "params:proposals"],
                outputs=["proposals", "video_scores", "proposal_tags"],
                name="generate_proposals",
            )
        ]
    )
