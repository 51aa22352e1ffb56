"""Read-only commands (`compare`, `summary`) on a file that is no MLflow database: one line, and
the file is left as it was (MLflow would run its migrations into it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import assert_user_error, listing, run


@pytest.mark.parametrize("command", ["compare", "summary"])
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "an empty file"),
        (b"not a database at all, just text\n" * 40, "file is not a database"),
    ],
)
def test_not_a_database_is_refused_without_writing(tmp_path: Path, command, content, problem):
    db = tmp_path / "mlflow.db"
    db.write_bytes(content)
    before = listing(tmp_path)
    code, out, err = run([command, "--tracking-uri", f"sqlite:///{db}"])
    assert_user_error(code, err, f"{db}: not a readable MLflow database", problem)
    assert db.read_bytes() == content and listing(tmp_path) == before
