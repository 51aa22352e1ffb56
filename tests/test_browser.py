"""What users see, in a real (headless) Chromium: the kedro viz graph and the MLflow runs table.

Skipped only where no Chromium is found (`.ci/run` installs Debian's `chromium`). Chromium runs
with `--virtual-time-budget`, so a page's scripts finish before the DOM is dumped or the
screenshot taken.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from co2net_pipeline.kedro_glue.hooks import tag_experiment_kind
from co2net_pipeline.tracking.runs import experiment_url

CHROMIUM = next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if (path := shutil.which(name))
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium found (CI: apt-get install chromium)"
)
# Flags that work in containers without a display, GPU, sandbox or network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)
# kedro viz without its feature tour (it covers the graph), in the light theme.
_VIZ_PRIME = """<!doctype html><script>
localStorage.setItem("KedroViz", JSON.stringify({showFeatureHints: false, theme: "light"}));
location.replace("/");
</script>"""


def chromium(
    url: str, profile: Path, screenshot: Path | None = None, budget_ms: int = 20000
) -> str:
    """The page's DOM after `budget_ms` of virtual time (or, with `screenshot`, a PNG there)."""
    output = [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    result = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]
        + [*output, url],
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    )
    return result.stdout


def visible_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A static HTTP server for `directory` on 127.0.0.1 (a free port); yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=directory))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def mlflow_ui(backend_uri: str, artifact_root: Path, monkeypatch) -> Iterator[str]:
    """MLflow's UI app (what `mlflow ui` serves) on 127.0.0.1, in this process: a separate
    `mlflow ui` takes ~45 s to start on 2 busy cores."""
    import logging

    from mlflow.server import app, handlers
    from werkzeug.serving import make_server

    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", backend_uri)
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", str(artifact_root))
    monkeypatch.setenv("_MLFLOW_SERVER_SERVE_ARTIFACTS", "false")
    monkeypatch.setattr(handlers, "_tracking_store", None)  # built from the variables above
    monkeypatch.setattr(handlers, "_model_registry_store", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_mlflow_ui_opens_the_experiment_on_its_runs_table(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("co2net", artifact_location=str(tmp_path / "mlruns"))
    tag_experiment_kind(client, experiment_id)
    run = client.create_run(experiment_id, run_name="train_eval/seed=3552")
    client.log_metric(run.info.run_id, "detection_metrics.avg_0.1-0.7", 0.42)
    client.set_terminated(run.info.run_id)

    with mlflow_ui(uri, tmp_path / "mlruns", monkeypatch) as base:
        page = visible_text(chromium(experiment_url(base, experiment_id), tmp_path / "profile"))
    assert "Run Name" in page and "train_eval/seed=3552" in page, page[:600]
    # the GenAI overview shows traces, token usage and cost instead
    assert "Token Usage" not in page and "Cost Breakdown" not in page


@pytest.fixture(scope="module")
def viz_site(viz_build) -> Path:
    """The built kedro viz site plus a page that switches its feature tour off."""
    (viz_build / "prime.html").write_text(_VIZ_PRIME)
    return viz_build


def test_kedro_viz_draws_the_default_pipeline(viz_site, tmp_path):
    api = json.loads((viz_site / "api/main").read_text())
    datasets = {n["name"] for n in api["nodes"] if n["type"] == "data"}
    shot = tmp_path / "viz.png"
    with serve(viz_site) as base:
        dom = chromium(f"{base}/prime.html", tmp_path / "profile")
        chromium(f"{base}/prime.html", tmp_path / "profile", screenshot=shot)
    labels = set(re.findall(r"<text[^>]*>([^<]+)</text>", dom))
    drawn = {label.strip() for label in labels} & {d.rsplit(".", 1)[-1] for d in datasets}
    assert {"raw_features", "raw_annotations", "feature_store", "trained_model"} <= drawn, sorted(
        labels
    )
    layers = {n["name"]: n.get("layer") for n in api["nodes"] if n["type"] == "data"}
    assert layers["raw_features"] == layers["raw_annotations"] == "raw"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_co2net_ui_prints_the_address_of_the_runs_table(tmp_path):
    """`co2net ui` (the README's command): MLflow's UI on 127.0.0.1, and the address it prints
    opens the experiment's runs table, even without the experiment-kind tag."""
    import os
    import queue
    import signal
    import socket
    import sys

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("co2net", artifact_location=str(tmp_path / "mlruns"))
    run = client.create_run(experiment_id, run_name="train_eval/seed=3552")
    client.log_metric(run.info.run_id, "detection_metrics.avg_0.1-0.7", 0.42)
    client.set_terminated(run.info.run_id)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).with_name("co2net")), "ui", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--tracking-uri", uri],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: mlflow ui starts a worker
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in server.stdout], daemon=True).start()
    try:
        line = ""
        while "the runs of experiment" not in line:
            line = lines.get(timeout=300)
        url = line.strip().split(": ", 1)[1]
        assert url == experiment_url(f"http://127.0.0.1:{port}", experiment_id)
        page = visible_text(chromium(url, tmp_path / "profile"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert "Run Name" in page and "train_eval/seed=3552" in page, page[:600]
    assert "Token Usage" not in page and "Cost Breakdown" not in page
