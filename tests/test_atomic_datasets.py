"""Catalog files are replaced atomically (issue 24): a save killed half-way or stopped by a full
disk leaves the previous file, never a 0-byte or half one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from kedro.io import DatasetError

from co2net_pipeline.common.disk_space import DiskFullError
from co2net_pipeline.kedro_glue.atomic_datasets import JSONDataset

ROOT = Path(__file__).resolve().parents[1]
IN_PLACE = ("json.", "pandas.", "text.", "matplotlib.", "pickle.", "yaml.", "plotly.")


def _types(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["type"]] if isinstance(node.get("type"), str) else []
        return found + [t for value in node.values() for t in _types(value)]
    return []


@pytest.mark.parametrize("catalog", ["catalog.yml", "catalog_studies.yml"])
def test_catalog_files_use_the_atomic_datasets(catalog):
    types = _types(yaml.safe_load((ROOT / "conf" / "base" / catalog).read_text()))
    assert any("atomic_datasets" in t for t in types)
    assert [t for t in types if t.startswith(IN_PLACE)] == []


KILL_MID_SAVE = textwrap.dedent(
    """
    import json, os, signal, sys
    from co2net_pipeline.kedro_glue.atomic_datasets import JSONDataset

    def dump_half_then_die(data, file, **kwargs):
        file.write('{"results": {"half": ')
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of the save

    json.dump = dump_half_then_die
    JSONDataset(filepath=sys.argv[1]).save({"results": {"new": 1}})
    """
)


def test_kill_9_during_a_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "detections.json"
    JSONDataset(filepath=str(path)).save({"results": {"old": 1}})
    done = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(path)], timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert json.loads(path.read_text()) == {"results": {"old": 1}}


def test_a_failed_save_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    dataset = JSONDataset(filepath=str(path))
    dataset.save({"map": 1})
    with pytest.raises(DatasetError):
        dataset.save({"map": object()})  # not JSON: fails after the file was opened
    assert dataset.load() == {"map": 1} and os.listdir(tmp_path) == ["metrics.json"]


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(small_disk):
    folder, real = small_disk
    if not real:
        pytest.skip("needs a real full file system (root, to mount a tmpfs)")
    path = folder / "evaluation.json"
    dataset = JSONDataset(filepath=str(path))
    dataset.save({"map": 1})
    with pytest.raises(DatasetError) as info:
        dataset.save({"rows": ["x" * 1000] * 10_000})  # ~10 MB on a 5 MiB disk
    cause = info.value.__cause__
    assert isinstance(cause, DiskFullError) and str(cause) == f"{path}: no space left on device"
    assert dataset.load() == {"map": 1} and os.listdir(folder) == ["evaluation.json"]
