"""A full disk while writing the feature store: one line naming the file, no crash, nothing left
(issue 24). Real 5 MiB tmpfs as root, else a simulated one (see the `small_disk` fixture)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from co2net_pipeline.cli import main
from co2net_pipeline.data.synthetic import synthesize


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """Synthetic THUMOS14-shaped W-TALC features of ~8.5 MiB: more than the small disk holds."""
    folder = tmp_path_factory.mktemp("raw")
    synthesize(folder, "Thumos14reduced", {"feature_dim": 8, "seed": 0})
    return folder


def test_ingest_onto_a_full_disk_is_one_line_and_leaves_nothing(features, small_disk, capsys):
    folder, real = small_disk
    store = folder / "store.h5"
    args = ["ingest", "--features", str(features), "--output", str(store)]
    if real:  # a real process: a crash (exit 139) would show here
        done = subprocess.run(
            [str(Path(sys.executable).with_name("co2net")), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        code, err = done.returncode, done.stderr
    else:
        code, err = main(args), capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"co2net ingest: error: {re.escape(str(store))}: no space left on device "
        r"\(the feature store needs 9\.\d MiB, 5\.0 MiB free\)",
        lines[0],
    ), lines
    assert os.listdir(folder) == []


FILL = textwrap.dedent(
    """
    import sys
    import numpy as np
    import co2net_pipeline.data.store as store

    store.require_free_space = lambda *a, **k: None  # as if the disk filled after the checks
    items = ((f"v{i}", np.ones((200, 64), np.float32)) for i in range(200))
    try:
        store.write_feature_store(sys.argv[1], items)
    except OSError as exc:
        print(type(exc).__name__, exc)
    """
)


def test_disk_filling_up_during_the_write_names_the_video_and_exits_cleanly(small_disk):
    folder, real = small_disk
    if not real:
        pytest.skip("needs a real full file system (root, to mount a tmpfs)")
    store = folder / "store.h5"
    done = subprocess.run(
        [sys.executable, "-c", FILL, str(store)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]  # HDF5 used to segfault at exit
    assert done.stdout.startswith(
        f"DiskFullError {store}: no space left on device (while writing video v"
    )
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    assert os.listdir(folder) == []
