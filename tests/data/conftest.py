"""Fixtures of the data-layer tests (helpers live in `data_helpers`)."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import make_annotations, make_features

from co2net_pipeline.data.annotations import Annotations


@pytest.fixture
def tiny() -> tuple[Annotations, dict[str, np.ndarray]]:
    annotations = make_annotations()
    return annotations, make_features(annotations)
