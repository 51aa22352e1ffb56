"""Fixtures of the extraction tests: stand-in I3D weights (golden recipe) written once."""

from __future__ import annotations

from pathlib import Path

import pytest
from extraction_helpers import write_recipe_weights

from co2net_pipeline.extraction.settings import ExtractionSettings

# Tiny frames keep TV-L1 (~1 s per 256 x 341 frame pair on 2 cores) and I3D fast; "same"
# padding lets I3D take a 16 x 16 crop.
TINY = ExtractionSettings(short_side=24, crop_size=16, progress=False, flow_workers=1)


@pytest.fixture(scope="session")
def i3d_weights(tmp_path_factory) -> tuple[Path, Path]:
    """(rgb.pt, flow.pt): plain `torch.save` state dicts, weights by the golden recipe."""
    return write_recipe_weights(tmp_path_factory.mktemp("i3d_weights"))
