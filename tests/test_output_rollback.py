"""A failed `kedro run` leaves the catalog files as they were, not a mix of two runs' outputs
(issue 24): the output journal, and a full disk while MLflow logs an artifact (a real 5 MiB
tmpfs as `mlruns/` when root, else a simulated ENOSPC; see the `small_disk` fixture)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.framework.hooks import hook_impl
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_helpers import _forget_mlflow_run as forget_mlflow_run
from kedro_helpers import copy_project, find_runs, one_torch_thread, run_pipeline

from co2net_pipeline.common.output_journal import RUN_OUTPUTS, OutputJournal
from co2net_pipeline.data.store import write_array_store
from co2net_pipeline.kedro_glue import run_guard
from co2net_pipeline.kedro_glue.atomic_datasets import JSONDataset
from co2net_pipeline.kedro_glue.datasets import TorchModelDataset


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in `folder`, hidden ones included, by name."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def journal(monkeypatch):
    fresh = OutputJournal()
    monkeypatch.setattr("co2net_pipeline.common.output_journal.RUN_OUTPUTS", fresh)
    monkeypatch.setattr(run_guard, "RUN_OUTPUTS", fresh)
    return fresh


def test_rollback_restores_replaced_files_and_removes_new_ones(tmp_path, journal):
    old = tmp_path / "report.json"
    JSONDataset(filepath=str(old)).save({"run": 1})
    model = tmp_path / "model.pt"
    TorchModelDataset(filepath=str(model)).save({"w": 1})
    before = _files(tmp_path)
    journal.begin()
    JSONDataset(filepath=str(old)).save({"run": 2})
    JSONDataset(filepath=str(old)).save({"run": 3})  # saved twice: the first previous is kept
    TorchModelDataset(filepath=str(model)).save({"w": 2})
    JSONDataset(filepath=str(tmp_path / "new.json")).save({"run": 3})
    assert json.loads(old.read_text()) == {"run": 3}
    assert len(_files(tmp_path)) == 5  # the two previous files, each under a hidden name
    done = journal.rollback()
    assert _files(tmp_path) == before and not journal.open
    assert done.summary() == "the run's outputs were rolled back (2 restored, 1 removed)"
    assert journal.last is done


def test_commit_keeps_the_new_files_and_drops_the_backups(tmp_path, journal):
    path = tmp_path / "report.json"
    JSONDataset(filepath=str(path)).save({"run": 1})
    JSONDataset(filepath=str(path)).save({"run": 2})  # no journal open: nothing kept
    assert list(tmp_path.iterdir()) == [path]
    journal.begin()
    JSONDataset(filepath=str(path)).save({"run": 3})
    journal.commit()
    assert list(tmp_path.iterdir()) == [path] and json.loads(path.read_text()) == {"run": 3}
    assert not journal.rollback()  # nothing open: nothing to do


def test_a_killed_runs_backup_is_removed_by_the_next_run(tmp_path, journal):
    path = tmp_path / "report.json"
    JSONDataset(filepath=str(path)).save({"run": 1})
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".report.json.bak-{dead}-0123abcd.json"
    stale.write_text("{}")
    journal.begin()
    JSONDataset(filepath=str(path)).save({"run": 2})
    journal.commit()
    assert list(tmp_path.iterdir()) == [path]


def test_unfinished_run_is_rolled_back_at_exit(tmp_path, journal):
    path = tmp_path / "report.json"
    journal.begin()
    JSONDataset(filepath=str(path)).save({"run": 1})
    run_guard.roll_back_unfinished()  # what atexit does after Ctrl-C or SIGTERM
    assert list(tmp_path.iterdir()) == [] and not journal.open


# ------------------------------------------------------------------------------------------
# A full disk while MLflow logs an artifact, in a real `kedro run` of the proposals pipeline


def _fill(folder: Path) -> None:
    """Write zeros into `folder` until its file system is full."""
    with open(folder / "filler", "wb") as fh:
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()


class _DiskFillsBeforeProposals:
    """The disk under `mlruns/` fills up just before the proposals are saved: their local file
    is written, MLflow's copy of it is not."""

    def __init__(self, mlruns: Path, real: bool, monkeypatch) -> None:
        self.mlruns, self.real, self.monkeypatch = mlruns, real, monkeypatch

    @hook_impl
    def before_dataset_saved(self, dataset_name, data, node) -> None:
        if dataset_name != "proposals":
            return
        if self.real:
            _fill(self.mlruns)
            return
        from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.monkeypatch.setattr(LocalArtifactRepository, "log_artifact", full)


def _proposal_inputs(project: Path) -> Path:
    """The proposals pipeline's inputs: the test-set CAS in data/07, the class list."""
    rng = np.random.default_rng(0)
    classes = ["BaseballPitch", "Diving"]
    (project / "data/03_primary").mkdir(parents=True)
    (project / "data/03_primary/classlist.json").write_text(json.dumps(classes))
    pd.DataFrame({"video_id": pd.Series([], dtype=str)}).to_parquet(
        project / "data/03_primary/ambiguous_intervals.parquet"
    )
    out = project / "data/07_model_output"
    out.mkdir(parents=True)
    arrays = {
        f"video_test_{i:07d}": {
            "cas": rng.normal(size=(40, 3)).astype(np.float32),
            "attention": rng.uniform(size=40).astype(np.float32),
        }
        for i in range(3)
    }
    write_array_store(out / "test_cas_store.h5", arrays)
    return out


def test_full_disk_while_mlflow_logs_an_artifact_fails_the_run_and_rolls_back(
    tmp_path, small_disk, monkeypatch
):
    monkeypatch.delenv("CO2NET_DEBUG", raising=False)
    mlruns, real = small_disk
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    (project / "mlruns").symlink_to(mlruns, target_is_directory=True)
    out = _proposal_inputs(project)
    params = {"proposals": {"ambiguous_filter": False}}
    run_pipeline(project, "proposals", params)  # the previous run, complete
    before = _files(out)
    assert {"proposals.parquet", "video_scores.parquet"} < set(before)
    assert not [name for name in before if name.startswith(".")]  # its backups were dropped
    params["proposals"]["oic_weight"] = 0.9  # other proposal scores, if they stayed
    with contextlib.chdir(project), one_torch_thread():
        bootstrap_project(project)
        try:
            with KedroSession.create(project_path=project, runtime_params=params) as session:
                session._hook_manager.register(_DiskFillsBeforeProposals(mlruns, real, monkeypatch))
                with pytest.raises(run_guard.DiskFullRunError) as info:
                    session.run(pipeline_names=["proposals"])
        finally:
            forget_mlflow_run()
    run, previous = find_runs(project)
    assert (run.info.status, previous.info.status) == ("FAILED", "FINISHED")
    assert _files(out) == before  # the new proposals are gone, nothing hidden is left
    artifact = f"{run.info.artifact_uri.removeprefix('file://')}/detections/proposals.parquet"
    assert info.value.format_message() == (
        f"{artifact}: no space left on device (MLflow logging {out / 'proposals.parquet'}); "
        "the run's outputs were rolled back (1 restored, 0 removed)"
    )
    assert not RUN_OUTPUTS.open
