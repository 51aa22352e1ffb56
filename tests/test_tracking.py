"""Reading runs back: `co2net compare`, the compare_runs notebook, and `kedro viz build`.

All run against the shared tiny project of kedro_helpers (one tiny train_eval run).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import nbformat
import pandas as pd
import pytest
from kedro_helpers import find_runs, run_pipeline, tiny_trained_project, use_tracking
from nbclient import NotebookClient

from co2net_pipeline.cli import main as co2net
from co2net_pipeline.tracking.runs import search_runs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_trained_project(tmp_path_factory)


@pytest.mark.slow
def test_co2net_compare_two_runs_writes_csv_and_png(project, tmp_path, capsys):
    train_eval = find_runs(project, "attributes.run_name LIKE 'train_eval%'")[-1]
    # re-score the same CAS with another class threshold: a second run whose params differ
    run_pipeline(project, ["proposals", "evaluation"], {"proposals": {"class_threshold": 0.5}})
    rescored = find_runs(project, "attributes.run_name LIKE 'proposals+evaluation%'")[0]
    uri = f"sqlite:///{project / 'mlflow.db'}"
    out = tmp_path / "comparison"
    ids = [train_eval.info.run_id, rescored.info.run_id]
    capsys.readouterr()

    # the 8-character ids our tools print are enough
    prefixes = [i[:8] for i in ids]
    assert (
        co2net(["compare", "--runs", *prefixes, "--output", str(out), "--tracking-uri", uri]) == 0
    )

    printed = capsys.readouterr().out
    assert "proposals.class_threshold" in printed
    assert (out / "comparison.png").stat().st_size > 0
    table = pd.read_csv(out / "comparison.csv", index_col=[0, 1])  # section, name
    assert table.loc[("selected model", "mAP@0.5"), "unit"] == "%"
    table = table.drop(columns="unit")
    # one column per run in the order given, headed by its name; the first row holds its id
    full_ids = table.loc[("run", "id")].tolist()
    assert full_ids == ids
    columns = list(table.columns)  # train_eval, rescored
    assert columns[0].startswith("train_eval/") and columns[1].startswith("proposals+evaluation")
    threshold = table.loc[("parameter", "proposals.class_threshold"), columns]
    assert threshold.astype(float).tolist() == [0.2, 0.5]
    assert "evaluation.tiou" not in table.index.get_level_values("name")  # equal in both runs
    for metric in ("mAP@0.5", "avg mAP 0.1:0.7"):
        assert table.loc[("selected model", metric)].notna().all()


@pytest.mark.slow
def test_compare_without_run_ids_leaves_nested_runs_out(project, tmp_path):
    use_tracking(project)
    train_eval = find_runs(project, "attributes.run_name LIKE 'train_eval%'")[-1]
    client = mlflow.MlflowClient()
    child = client.create_run(
        train_eval.info.experiment_id,
        tags={"mlflow.parentRunId": train_eval.info.run_id},
        run_name="nested",
    )
    client.set_terminated(child.info.run_id)
    uri = f"sqlite:///{project / 'mlflow.db'}"

    top = search_runs("co2net", uri, include_nested=False)
    assert child.info.run_id not in set(top["run_id"])
    assert child.info.run_id in set(search_runs("co2net", uri)["run_id"])
    assert co2net(["compare", "--output", str(tmp_path), "--tracking-uri", uri]) == 0
    table = pd.read_csv(tmp_path / "comparison.csv", dtype=str)
    shown = table.iloc[0, 3:].tolist()  # the run / id row
    newest = top[top["status"] == "FINISHED"]["run_id"].head(5).tolist()
    assert shown == newest and child.info.run_id not in shown


@pytest.mark.slow
def test_compare_runs_notebook_executes(project, monkeypatch):
    monkeypatch.setenv("CO2NET_PROJECT_DIR", str(project))
    notebook = nbformat.read(ROOT / "notebooks/compare_runs.ipynb", as_version=4)
    # "python3" is ipykernel's own spec; jupyter_client starts it with sys.executable (the venv)
    client = NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # ipywidgets (dev extra) draws tqdm's notebook bars: no "IProgress not found" warning
    assert not [o for o in outputs if "IProgress" in str(o.get("text", ""))]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # mAP vs tIoU, the CAS×attention panels, the T-CAM heat map
    assert str(project) in outputs[0]["data"]["text/plain"]


@pytest.mark.slow
def test_kedro_viz_build_writes_the_static_site(viz_build):
    main = viz_build / "api/main"
    assert main.is_file()
    registered = {p["id"] for p in json.loads(main.read_text())["pipelines"]}
    assert {"train_eval", "train_eval_seeds", "ablations", "training_ml"} <= registered
