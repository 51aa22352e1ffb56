"""Wrongly typed input columns of the logged detector: one short line naming the column and its
dtype, not MLflow's schema error dumping the frame and the schema."""

from __future__ import annotations

import numpy as np
import pytest
from test_pyfunc_errors import _frame, logged  # noqa: F401  (the fixture)

from co2net_pipeline.data.frames import frame_to_features

WRONG = [
    ("rgb_0", ["x"] * 32, r"column rgb_0 has dtype (object|str) \(e\.g\. 'x'\), expected numbers"),
    (
        "flow_2",
        [True] * 32,
        r"column flow_2 has dtype bool \(e\.g\. True\), expected numbers",
    ),
    ("snippet", np.linspace(0, 1, 32), r"column snippet has dtype float64 .*expected integers"),
    ("video_id", [1.5] * 32, r"column video_id has dtype float64 .*expected strings"),
]


@pytest.mark.parametrize(("column", "values", "message"), WRONG)
def test_wrong_dtype_is_one_short_line(column, values, message):
    frame = _frame()
    frame[column] = values
    with pytest.raises(ValueError, match=r"^new video features: " + message) as info:
        frame_to_features(frame)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_convertible_dtypes_are_accepted():
    frame = _frame()
    reference = frame_to_features(frame)
    frame = frame.astype({c: np.float32 for c in frame.columns[2:]})
    frame["snippet"] = frame["snippet"].astype(np.float64)  # whole numbers, as from a CSV
    back = frame_to_features(frame)
    assert back.keys() == reference.keys()
    assert all(np.allclose(back[v], reference[v]) for v in back)


@pytest.mark.parametrize(("column", "values", "message"), WRONG[:3])
def test_loaded_pyfunc_reports_the_column_not_the_frame(logged, column, values, message):  # noqa: F811
    frame = _frame()
    frame[column] = values
    with pytest.raises(Exception, match=message) as info:
        logged.predict(frame)
    assert len(str(info.value)) < 300, str(info.value)
