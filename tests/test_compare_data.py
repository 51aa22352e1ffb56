"""`co2net compare` tells datasets apart and reads well (issue 22): the data that differs first,
columns in the order given headed by run names, one number format, folded wide tables, and a
closed pipe (`co2net compare | head -1`) ends quietly."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from co2net_pipeline.cli import main

DATA = {
    "mine": {
        "dataset": "mini3",
        "data_source": "user",
        "features_path": "/data/mine/features",
        "features_format": "npy-folder",
        "feature_fingerprint": "a" * 64,
    },
    "synthetic": {
        "dataset": "Thumos14reduced",
        "data_source": "synthetic",
        "features_path": "/p/data/01_raw/synthetic/Thumos14reduced-I3D-JOINTFeatures.npy",
        "features_format": "wtalc",
        "feature_fingerprint": "b" * 64,
    },
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """Two finished runs on different data that differ in one parameter, older first; and
    four more with long names and 78 parameters."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    root = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("co2net", artifact_location=str(root / "artifacts"))
    ids = {}
    runs = [
        (k, f"train_eval/seed=3552,data={k}", n, 0.578)
        for k, n in zip(DATA, (400, 1000), strict=True)
    ]
    runs += [
        (f"long{i}", f"train_eval/seed={i}," + ",".join(f"x{j}.y={j}" for j in range(9)), i, 0.5)
        for i in range(4)
    ]
    for i, (key, name, max_iter, value) in enumerate(runs):
        run = client.create_run(experiment, start_time=1_700_000_000_000 + i, run_name=name)
        params = [Param("training.max_iter", str(max_iter))]
        params += [Param(f"group.key_{j:02d}", "same") for j in range(77)]
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("detection_metrics.map_0.5", value + i / 1000, 0, 0),
                Metric("detection_metrics.map_0.1", 0.6, 0, 0),
                Metric("detection_metrics.avg_0.1-0.7", 0.5347, 0, 0),
            ],
            params=params,
            tags=[RunTag(k, v) for k, v in DATA.get(key, DATA["synthetic"]).items()],
        )
        client.set_terminated(run.info.run_id)
        ids[key] = run.info.run_id
    return {"uri": uri, "ids": ids}


def _compare(store: dict, tmp_path, capsys, *run_ids: str) -> tuple[str, pd.DataFrame]:
    out = tmp_path / "comparison"
    capsys.readouterr()
    code = main(["compare", *run_ids, "--output", str(out), "--tracking-uri", store["uri"]])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return printed.out, pd.read_csv(out / "comparison.csv", dtype=str)


def test_runs_on_other_data_list_the_data_first_in_the_order_given(
    store, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "120")
    ids = store["ids"]
    printed, table = _compare(store, tmp_path, capsys, ids["synthetic"][:8], ids["mine"][:8])
    names = ["train_eval/seed=3552,data=synthetic", "train_eval/seed=3552,data=mine"]
    assert list(table.columns[3:]) == names  # as given (mine is older), headed by name
    data = table[table["section"] == "data"].set_index("name")
    assert list(data.index) == [
        "dataset",
        "data_source",
        "features_path",
        "features_format",
        "feature_fingerprint",
    ]
    assert data.loc["features_path", names[1]] == "/data/mine/features"
    sections = table["section"].drop_duplicates().tolist()
    assert sections == ["run", "data", "parameter", "selected model"]
    assert table[table["section"] == "parameter"]["name"].tolist() == ["training.max_iter"]
    assert printed.index("Data that differs:") < printed.index("Parameters that differ:")
    assert "features_path" in printed and "feature_fingerprint" in printed
    metrics = table[table["section"] == "selected model"].set_index("name")
    assert metrics.loc["mAP@0.5"].tolist()[1:] == ["%", "57.90", "57.80"]
    assert metrics.loc["avg mAP 0.1:0.7"].tolist()[1:] == ["%", "53.47", "53.47"]
    assert metrics.loc["mAP@0.1"].tolist()[1:] == ["%", "60.00", "60.00"]  # never "60.0"


def test_one_run_prints_its_data_and_leaves_the_parameters_to_the_csv(store, tmp_path, capsys):
    printed, table = _compare(store, tmp_path, capsys, store["ids"]["mine"][:8])
    assert "Parameters: 78, in the CSV" in printed and "group.key_00" not in printed
    assert (table["section"] == "parameter").sum() == 78
    assert "Data:" in printed and "/data/mine/features" in printed
    assert max(len(line) for line in printed.split("\nwrote ")[0].splitlines()) <= 100


def test_a_wide_comparison_is_folded_to_the_terminal(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    long_ids = [store["ids"][f"long{i}"][:8] for i in range(4)]
    printed, table = _compare(store, tmp_path, capsys, *long_ids)
    assert max(len(line) for line in printed.split("\nwrote ")[0].splitlines()) <= 100
    full_names = list(table.columns[3:])
    assert all(len(n) > 40 for n in full_names)  # whole in the CSV, shortened on screen
    assert printed.count("mAP@0.5") == 2  # 4 runs in two blocks of the metrics table
    assert "train_eval/seed=3,x0.y=0,x1.y=1,x2.y=2,…" in printed  # the distinct start stays


class _ClosedAfter(io.StringIO):
    """A stdout whose reader leaves after `lines` lines (`| head -N`)."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.left -= text.count("\n")
        return super().write(text)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")


@pytest.mark.parametrize("command", [["compare"], ["summary"]])
def test_a_closed_pipe_ends_quietly(store, tmp_path, capsys, monkeypatch, command):
    args = [*command, "--tracking-uri", store["uri"]]
    if command == ["compare"]:
        args += ["--output", str(tmp_path / "c")]
    monkeypatch.setattr("sys.stdout", _ClosedAfter(1))
    assert main(args) == 141
    assert capsys.readouterr().err == ""
    if command == ["compare"]:  # written before printing: the closed pipe loses no file
        assert (tmp_path / "c/comparison.csv").is_file()
