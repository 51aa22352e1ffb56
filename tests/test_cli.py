"""The `co2net` command: help, one-line user errors, output checks before any work, sanity
warnings, run id prefixes, metric order, the comparison CSV and a fast `summary`.

Each defect of issue 14 / 15 has a test asserting its message, exit status 2 and that nothing
was written. MLflow stores are built in a temporary folder, never the project's `mlflow.db`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from co2net_pipeline.cli import co2net as co2net_group
from co2net_pipeline.cli import main
from co2net_pipeline.tracking.runs import (
    metric_sort_key,
    read_sqlite_runs,
    records_from_frame,
    resolve_run_ids,
    sort_metric_names,
)

sys.path.insert(0, str(Path(__file__).parent / "data"))  # the data-layer tests' tiny datasets
from data_helpers import make_annotations, make_features, write_wtalc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GT_CSV = "video_id,t_start,t_end,label\nclip,0.0,6.4,a\nclip,12.8,19.2,b\n"
PRED_CSV = "video_id,t_start,t_end,label,score\nclip,0,10,a,0.9\nclip,20,30,b,0.6\n"


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`co2net args` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def eval_files(tmp_path: Path) -> tuple[Path, Path]:
    gt, preds = tmp_path / "gt.csv", tmp_path / "pred.csv"
    gt.write_text(GT_CSV)
    preds.write_text(PRED_CSV)
    return gt, preds


@pytest.fixture
def tiny_raw(tmp_path: Path) -> Path:
    annotations = make_annotations()
    return write_wtalc(tmp_path / "raw", annotations, make_features(annotations))


# ------------------------------------------------------------------------------------------
# Help


def test_every_option_has_help_and_shows_its_default() -> None:
    for name, command in co2net_group.commands.items():
        for param in command.params:
            if not isinstance(param, click.Option) or param.name == "help":
                continue
            assert param.help, f"co2net {name} {param.opts[0]}: no help text"
            assert param.required or param.is_flag or param.show_default, (
                f"co2net {name} {param.opts[0]}: default not shown"
            )
        assert command.short_help and len(command.short_help) <= 60, name
    code, out, _ = run(["--help"])
    assert code == 0
    assert all(name in out for name in ("synthesize", "ingest", "evaluate", "compare", "summary"))
    code, out, _ = run(["evaluate", "--help"])
    assert code == 0 and "[default: snippets]" in out and "--tiou" in out


def test_kedro_finds_the_co2net_group_in_cli_py() -> None:
    from co2net_pipeline import cli

    assert isinstance(cli.cli, click.Group) and cli.cli.commands["co2net"] is co2net_group


def test_usage_error_is_one_line_with_status_2() -> None:
    code, _, err = run(["evaluate", "--predictions", "p.csv", "--bogus"])
    assert_user_error(code, err, "co2net evaluate: error:", "--bogus", "co2net evaluate --help")


# ------------------------------------------------------------------------------------------
# Errors: one line, status 2, traceback only on request


def test_missing_file_is_one_line_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "DO_NOT_TRACK": "true"}
    env.pop("CO2NET_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "co2net_pipeline.cli", "evaluate", "--predictions", "nope.csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_user_error(proc.returncode, proc.stderr, "nope.csv: predictions file not found")
    assert proc.stdout == ""


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how: str, tmp_path: Path, monkeypatch) -> None:
    args = ["evaluate", "--predictions", str(tmp_path / "nope.csv")]
    if how == "flag":
        args = ["--debug", *args]
    else:
        monkeypatch.setenv("CO2NET_DEBUG", "1")
    with pytest.raises(ValueError, match="predictions file not found"):
        main(args)


# ------------------------------------------------------------------------------------------
# ingest: output checked before any work, nothing written unless everything is


def test_ingest_into_an_existing_folder_is_refused(tiny_raw: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    before = listing(tmp_path)
    code, out, err = run(["ingest", "--features", str(tiny_raw), "--output", str(target)])
    assert_user_error(code, err, "co2net ingest: error:", f"output {target} is a folder")
    assert out == "" and listing(tmp_path) == before


def test_ingest_under_a_file_is_refused(tiny_raw: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    before = listing(tmp_path)
    output = blocker / "sub" / "store.h5"
    code, _, err = run(["ingest", "--features", str(tiny_raw), "--output", str(output)])
    assert_user_error(code, err, f"{output}: cannot write here, {blocker} is a file")
    assert listing(tmp_path) == before


def test_ingest_writes_all_files_or_none(tiny_raw: Path, tmp_path: Path, monkeypatch) -> None:
    from co2net_pipeline.data import ingest as lib

    output = tmp_path / "new" / "tiny.h5"

    def store_fails(*args, **kwargs):
        raise OSError("disk full")

    # every table and report is written, then the store fails
    monkeypatch.setattr(lib, "write_feature_store", store_fails)
    before = listing(tmp_path)
    code, _, err = run(["ingest", "--features", str(tiny_raw), "--output", str(output)])
    assert_user_error(code, err, "disk full")
    assert listing(tmp_path) == before
    monkeypatch.undo()

    code, out, _ = run(["ingest", "--features", str(tiny_raw), "--output", str(output)])
    assert code == 0 and f"wrote {output} (4 videos)" in out
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "tiny.h5",
        "tiny_ambiguous.parquet",
        "tiny_classlist.parquet",
        "tiny_segments.parquet",
        "tiny_validation_report.json",
        "tiny_validation_report.md",
        "tiny_videos.parquet",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------------------
# evaluate


def test_evaluate_output_folder_is_refused_before_the_evaluation(
    eval_files: tuple[Path, Path], tmp_path: Path, monkeypatch
) -> None:
    import co2net_pipeline.reports.evaluation_files as evaluation_io

    def must_not_run(*args, **kwargs):
        raise AssertionError("the evaluation ran before the output was checked")

    monkeypatch.setattr(evaluation_io, "evaluate_files", must_not_run)
    gt, preds = eval_files
    folder = tmp_path / "metrics"
    folder.mkdir()
    before = listing(tmp_path)
    args = ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt)]
    code, out, err = run([*args, "--output", str(folder)])
    assert_user_error(code, err, "co2net evaluate: error:", f"output {folder} is a folder")
    code, out, err = run([*args, "--output", str(gt / "metrics.json")])
    assert_user_error(code, err, f"cannot write here, {gt} is a file")
    assert out == "" and listing(tmp_path) == before


@pytest.mark.parametrize(
    ("tiou", "message"),
    [
        (",", "need at least one value"),
        ("", "need at least one value"),
        ("0.7,0.1", "must be strictly increasing, got 0.7,0.1"),
        ("0.5,0.5", "must be strictly increasing"),
        ("0,0.5", "strictly between 0 and 1, got 0 in 0,0.5"),
        ("0.5,1", "strictly between 0 and 1"),
        ("0.1,x", "'0.1,x'"),
        ("nan", "strictly between 0 and 1"),
    ],
)
def test_bad_tiou_lists_are_errors(
    tiou: str, message: str, eval_files: tuple[Path, Path], tmp_path: Path
) -> None:
    gt, preds = eval_files
    out_file = tmp_path / "m.json"
    args = ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt), "--tiou", tiou]
    code, out, err = run([*args, "--output", str(out_file)])
    assert_user_error(code, err, "Invalid value for '--tiou'", message)
    assert out == "" and not out_file.exists()


def test_units_seconds_on_snippet_predictions_warns(tmp_path: Path) -> None:
    from co2net_pipeline.reports.evaluation_files import load_ground_truth

    gt, _, _ = load_ground_truth("thumos14", "test", "snippets")
    preds = tmp_path / "snippets.csv"
    gt.assign(score=1.0).to_csv(preds, index=False)  # perfect detections, in snippets
    code, out, err = run(["evaluate", "--predictions", str(preds), "--tiou", "0.5"])
    assert code == 0 and "100.00" in out and err == ""  # right unit: no warning
    code, out, err = run(["evaluate", "--predictions", str(preds), "--units", "seconds"])
    assert code == 0
    assert "prediction(s) end past their video's duration" in err
    assert "are the predictions in snippets?" in err


def test_negative_times_and_reversed_ground_truth_warn(tmp_path: Path) -> None:
    gt, preds = tmp_path / "gt.csv", tmp_path / "pred.csv"
    gt.write_text("video_id,t_start,t_end,label\nclip,0,6,a\nclip,19,13,b\n")
    preds.write_text("video_id,t_start,t_end,label,score\nclip,-2,6,a,0.9\nclip,13,19,b,0.5\n")
    out_file = tmp_path / "m.json"
    code, _, err = run(
        ["evaluate", "--predictions", str(preds), "--ground-truth", str(gt)]
        + ["--output", str(out_file)]
    )
    assert code == 0
    assert "warning: 1 prediction(s) with a negative start or end time" in err
    assert "warning: 1 ground-truth segment(s) with t_end < t_start" in err
    warnings = json.loads(out_file.read_text())["warnings"]
    assert warnings["negative_times"] == 1 and warnings["reversed_ground_truth"] == 1


def test_huge_json_score_is_a_one_line_error(tmp_path: Path) -> None:
    preds = tmp_path / "pred.json"
    preds.write_text(
        '{"results": {"clip": [{"label": "a", "score": 1' + "0" * 400 + ', "segment": [0, 5]}]}}'
    )
    gt = tmp_path / "gt.csv"
    gt.write_text(GT_CSV)
    code, _, err = run(["evaluate", "--predictions", str(preds), "--ground-truth", str(gt)])
    assert_user_error(code, err, "detection 0 is malformed")


# Property: any prediction / ground-truth file gives a result or one line, never a traceback
# or a partial output file.
_number = st.one_of(
    st.integers(-50, 200).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "x", "1e400", "-0", " 3 ", "1,5", '"7"']),
)
_text = st.one_of(st.sampled_from(["clip", "other", "a", "b", ""]), st.text(max_size=6))
_row = st.tuples(_text, _number, _number, _text, _number).map(lambda r: ",".join(r))
_header = st.sampled_from(
    [
        "video_id,t_start,t_end,label,score",
        "video_id,t_start,t_end,label",
        "video_id,start,end,label,score",
        "",
    ]
)
_csv = st.tuples(_header, st.lists(_row, max_size=6)).map(lambda h: "\n".join([h[0], *h[1]]))
_tiou = st.one_of(st.none(), st.sampled_from(["0.5", "0.1,0.5", "0.5,0.1", ",", "2"]))


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    predictions=st.one_of(_csv, st.binary(max_size=40)),
    ground_truth=st.one_of(_csv, st.just(GT_CSV)),
    units=st.sampled_from(["snippets", "seconds"]),
    tiou=_tiou,
)
def test_evaluate_gives_a_result_or_one_line(
    predictions: str | bytes, ground_truth: str, units: str, tiou: str | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = predictions if isinstance(predictions, bytes) else predictions.encode()
        (root / "pred.csv").write_bytes(data)
        (root / "gt.csv").write_text(ground_truth)
        output = root / "out" / "metrics.json"
        args = ["evaluate", "--predictions", str(root / "pred.csv")]
        args += ["--ground-truth", str(root / "gt.csv"), "--units", units]
        args += ["--output", str(output)] + (["--tiou", tiou] if tiou is not None else [])
        code, out, err = run(args)
        if code == 0:
            metrics = json.loads(output.read_text())
            assert set(metrics["map"]) and "mAP" in out
        else:
            assert_user_error(code, err, "co2net evaluate: error:")
            assert not (root / "out").exists()
        assert not [p for p in root.rglob("*") if ".tmp-" in p.name]


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
_detection = st.fixed_dictionaries(
    {},
    optional={
        "label": st.sampled_from(["a", "b", ""]) | _json_value,
        "score": st.floats(allow_nan=True, allow_infinity=True) | st.integers() | _json_value,
        "segment": st.lists(st.floats() | st.integers(-5, 40), max_size=3) | _json_value,
    },
)
_results = st.dictionaries(
    st.sampled_from(["clip", "other"]), st.lists(_detection, max_size=3) | _json_value, max_size=2
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(document=st.fixed_dictionaries({"results": _results}) | _json_value)
def test_evaluate_json_predictions_give_a_result_or_one_line(document) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "pred.json").write_text(json.dumps(document))
        (root / "gt.csv").write_text(GT_CSV)
        output = root / "out" / "metrics.json"
        code, out, err = run(
            ["evaluate", "--predictions", str(root / "pred.json"), "--ground-truth"]
            + [str(root / "gt.csv"), "--output", str(output)]
        )
        if code == 0:
            assert json.loads(output.read_text())["n_predictions"] >= 0
        else:
            assert_user_error(code, err, "co2net evaluate: error:")
            assert not (root / "out").exists()


def test_synthesize_into_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "synthetic"
    target.write_text("a file")
    code, out, err = run(["synthesize", "--output", str(target), "--feature-dim", "2"])
    assert_user_error(code, err, "co2net synthesize: error:", f"output {target} is a file")
    assert out == "" and listing(tmp_path) == ["synthetic"]


# ------------------------------------------------------------------------------------------
# MLflow runs: compare and summary


def test_metric_names_sort_by_tiou_numerically() -> None:
    names = [
        "best_on_test.iteration",
        "detection_metrics.avg_0.1-0.7",
        "best_on_test.map_0.5",
        "detection_metrics.map_0.6",
        "detection_metrics.map_0.55",
        "detection_metrics.avg_0.1-0.5",
        "detection_metrics.map_0.5",
        "detection_metrics.map_0.1",
    ]
    assert sort_metric_names(names) == [
        "detection_metrics.map_0.1",
        "detection_metrics.map_0.5",
        "detection_metrics.map_0.55",
        "detection_metrics.map_0.6",
        "detection_metrics.avg_0.1-0.5",
        "detection_metrics.avg_0.1-0.7",
        "best_on_test.map_0.5",
        "best_on_test.iteration",
    ]
    assert metric_sort_key("metrics.detection_metrics.map_0.9") < metric_sort_key("map_0.95")


def test_run_id_prefixes_resolve_uniquely() -> None:
    known = ["3ae8c661aaaa", "3ae8d000bbbb", "05a0e50ecccc"]
    assert resolve_run_ids(["3ae8c661", "05a0e50e"], known, "co2net") == [
        "3ae8c661aaaa",
        "05a0e50ecccc",
    ]
    assert resolve_run_ids(["05a0e50ecccc"], known, "co2net") == ["05a0e50ecccc"]
    with pytest.raises(ValueError, match=r"prefix '3ae8' matches 2 runs .*give more characters"):
        resolve_run_ids(["3ae8"], known, "co2net")
    with pytest.raises(ValueError, match="no run with id 'ffff' in experiment 'co2net'"):
        resolve_run_ids(["ffff"], known, "co2net")


TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A tracking store with a study parent + nested child, a `last` run and a newer
    `oracle_test` run with `best_on_test.*` metrics; metrics logged in a shuffled order."""
    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("co2net", artifact_location=str(root / "artifacts"))
    ids = {}
    start = 1_700_000_000_000
    for i, (name, selection) in enumerate([("last", "last"), ("oracle", "oracle_test")]):
        run_ = client.create_run(experiment, start_time=start + 1000 * i, run_name="train_eval")
        metrics = {f"detection_metrics.map_{t:g}": 0.6 - t / 2 + i / 100 for t in TIOU}
        metrics |= {
            "detection_metrics.avg_0.1-0.5": 0.4 + i / 100,
            "detection_metrics.avg_0.1-0.7": 0.3,
        }
        if selection == "oracle_test":
            metrics |= {f"best_on_test.map_{t:g}": 0.7 - t / 2 for t in TIOU}
            metrics |= {"best_on_test.avg_0.1-0.7": 0.35, "best_on_test.iteration": 3000}
        shuffled = sorted(metrics.items(), key=lambda kv: kv[0][::-1])  # not in tIoU order
        client.log_batch(
            run_.info.run_id,
            metrics=[Metric(k, v, start, 0) for k, v in shuffled],
            params=[Param("training.selection", selection), Param("seed", str(i))],
            tags=[RunTag("data_source", "synthetic")],
        )
        client.set_terminated(run_.info.run_id)
        ids[name] = run_.info.run_id
    child = client.create_run(
        experiment,
        start_time=start + 5000,
        tags={"mlflow.parentRunId": ids["last"]},
        run_name="nested",
    )
    client.log_metric(child.info.run_id, "detection_metrics.avg_0.1-0.7", 0.9)
    client.set_terminated(child.info.run_id)
    ids["child"] = child.info.run_id
    return {"uri": uri, "ids": ids, "root": root}


def test_sqlite_reader_matches_mlflow(store: dict) -> None:
    from co2net_pipeline.tracking.runs import search_runs

    fast = {r.run_id: r for r in read_sqlite_runs(store["root"] / "mlflow.db", "co2net")}
    slow = {r.run_id: r for r in records_from_frame(search_runs("co2net", store["uri"]))}
    assert list(fast) == list(slow) == [store["ids"][k] for k in ("child", "oracle", "last")]
    for run_id, record in fast.items():
        assert record.metrics == pytest.approx(slow[run_id].metrics)
        assert record.params == slow[run_id].params
        assert record.tags == slow[run_id].tags
        assert (record.status, record.name) == (slow[run_id].status, slow[run_id].name)


def test_summary_shows_both_models_in_tiou_order(store: dict) -> None:
    code, out, err = run(["summary", "--tracking-uri", store["uri"]])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"MLflow run {store['ids']['oracle']} ")  # not the nested child
    selected = lines.index("  selected model (best checkpoint on the test set):")
    best = lines.index("  best checkpoint on the test set, as the paper reports (iteration 3000):")
    assert selected < best
    shown = lines[selected + 1].split()[1:]
    assert [s.split(":")[0] for s in shown] == [f"{t:g}" for t in TIOU]
    assert lines[selected + 2] == "    avg mAP 0.1:0.5   41.00"
    assert lines[best + 2] == "    avg mAP 0.1:0.7   35.00"
    assert lines[-2] == (
        f"  browse: .venv/bin/co2net ui --tracking-uri {store['uri']}   (opens on the runs table)"
    )
    assert lines[-1].startswith("    at http://127.0.0.1:5000/#/experiments/")
    assert lines[-1].endswith("?workflowType=machine_learning")


def test_summary_imports_neither_mlflow_nor_pandas(store: dict) -> None:
    code = (
        "import sys\n"
        "from co2net_pipeline.cli import main\n"
        f"assert main(['summary', '--tracking-uri', {store['uri']!r}]) == 0\n"
        "heavy = sorted({'mlflow', 'pandas', 'torch', 'kedro'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "best checkpoint on the test set, as the paper reports" in proc.stdout


def test_summary_of_a_file_that_is_no_mlflow_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_text("not sqlite")
    code, _, err = run(["summary", "--tracking-uri", f"sqlite:///{db}"])
    assert_user_error(code, err, f"{db}: not a readable MLflow database")
    assert db.read_text() == "not sqlite"


def test_summary_without_a_database_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    code, _, err = run(["summary", "--tracking-uri", f"sqlite:///{db}"])
    assert_user_error(code, err, "co2net summary: error:", f"no MLflow database at {db}")
    assert not db.exists()


def test_compare_accepts_prefixes_and_saves_what_it_prints(store: dict, tmp_path: Path) -> None:
    ids = store["ids"]
    out_dir = tmp_path / "comparison"
    args = ["compare", "--runs", ids["last"][:8], ids["oracle"][:8]]
    code, out, err = run([*args, "--output", str(out_dir), "--tracking-uri", store["uri"]])
    assert code == 0, err
    table = pd.read_csv(out_dir / "comparison.csv")
    assert not [c for c in table.columns if c.startswith("Unnamed")]
    assert list(table.columns[:3]) == ["section", "name", "unit"]
    # in the order given, headed by the run name (the id where two runs share it)
    last, oracle = (f"train_eval ({ids[k][:8]})" for k in ("last", "oracle"))
    assert list(table.columns[3:]) == [last, oracle]
    assert table.iloc[0, 3:].tolist() == [ids["last"], ids["oracle"]]  # the run / id row
    selected = table[table["section"] == "selected model"]
    assert selected["name"].tolist() == [f"mAP@{t:g}" for t in TIOU] + [
        "avg mAP 0.1:0.5",
        "avg mAP 0.1:0.7",
    ]
    assert (selected["unit"] == "%").all()
    # the CSV holds the printed percentages
    row = selected[selected["name"] == "avg mAP 0.1:0.5"].iloc[0]
    assert row[oracle] == "41.00"  # one number format, printed and saved
    assert "avg mAP 0.1:0.5" in out and "41.00" in out
    best = table[table["section"] == "best on test"]
    assert best["name"].iloc[-1] == "iteration" and best[oracle].iloc[-1] == "3000"
    params = table[table["section"] == "parameter"].set_index("name")
    assert params.loc["training.selection", oracle] == "oracle_test"
    assert (out_dir / "comparison.png").stat().st_size > 0


def test_compare_refuses_a_file_as_output_folder(store: dict, tmp_path: Path) -> None:
    target = tmp_path / "comparison"
    target.write_text("not a folder")
    code, _, err = run(["compare", "--output", str(target), "--tracking-uri", store["uri"]])
    assert_user_error(code, err, f"output {target} is a file")
    assert target.read_text() == "not a folder" and listing(tmp_path) == ["comparison"]


def test_compare_unknown_prefix_is_one_line(store: dict, tmp_path: Path) -> None:
    args = ["compare", "--runs", "zzzzzzzz", "--output", str(tmp_path / "c")]
    code, _, err = run([*args, "--tracking-uri", store["uri"]])
    assert_user_error(code, err, "no run with id 'zzzzzzzz' in experiment 'co2net'")
    assert not (tmp_path / "c").exists()
