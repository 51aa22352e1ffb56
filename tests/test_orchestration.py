"""A study as independent Kedro runs dispatched by Airflow (co2net_pipeline.studies.airflow).

The integration test generates the DAGs with the real `kedro airflow create` (conf/airflow/),
imports them with Airflow's DagBag and runs the seeds DAG on the tiny configuration, for 2 seeds,
with Airflow's in-process runner (`dag.test()`, sqlite metadata DB under tmp).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from kedro_helpers import (
    TINY,
    _forget_mlflow_run,
    copy_project,
    find_runs,
    one_torch_thread,
    run_pipeline,
)

from co2net_pipeline.params.overrides import (
    configuration_name,
    configuration_overrides,
    flatten,
)
from co2net_pipeline.studies.airflow import study_configurations

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (3552, 7)


def _studies() -> dict:
    return yaml.safe_load((ROOT / "conf/base/parameters_studies.yml").read_text())["studies"]


# ---- library ------------------------------------------------------------------------------


def test_configuration_names_and_overrides():
    assert study_configurations("seeds", "3552 7") == [("seed_3552", "3552"), ("seed_7", "7")]
    assert study_configurations("seeds", 7) == [("seed_7", 7)]  # --params "seeds=7"
    assert study_configurations("ablations", ["full", "mutual_kl"]) == [
        ("full", "full"),
        ("mutual_kl", "mutual_kl"),
    ]
    with pytest.raises(ValueError, match="duplicate"):
        study_configurations("seeds", [1, 1])
    with pytest.raises(ValueError, match="no configuration"):
        study_configurations("seeds", [])
    with pytest.raises(ValueError, match="unknown study"):
        configuration_name("seed", 1)
    with pytest.raises(ValueError, match="is not"):
        configuration_name("ablations", "../full")

    studies = _studies()
    assert configuration_overrides(studies, "seeds", "7") == (
        "seed_7",
        {"training": {"seed": 7}, "snippet_sampling": {"seed": 7}},
        {"seed": "7"},
    )
    assert configuration_overrides(studies, "ablations", "mutual_kl") == (
        "mutual_kl",
        {"loss": {"mutual_metric": "kl"}},
        {"ablation_group": "mutual_metric"},
    )
    assert configuration_overrides(studies, "ablations", "full")[1] == {}
    with pytest.raises(ValueError, match="not in studies.ablations"):
        configuration_overrides(studies, "ablations", "fusion_xx")


def test_airflow_config_covers_the_studies():
    """The DAGs' default sweeps are the in-process study pipelines' (parameters_studies.yml)."""
    airflow = yaml.safe_load((ROOT / "conf/airflow/airflow.yml").read_text())
    studies = _studies()
    assert airflow["train_eval_seeds"] == {"study": "seeds", "seeds": studies["seeds"]}
    assert airflow["ablations"] == {"study": "ablations", "ablations": list(studies["ablations"])}


# ---- Airflow ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_dags(tmp_path_factory) -> Iterator[Path]:
    """The DAGs folder of an Airflow configured through the environment BEFORE its first import
    (it reads its configuration once per process): a tmp home, a sqlite metadata DB, no
    examples, no metrics or traces."""
    home = tmp_path_factory.mktemp("airflow_home")
    settings = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # the in-process Execution API signs its task tokens with it; a deployment sets its own
        "AIRFLOW__API_AUTH__JWT_SECRET": "co2net-test-only",
        "AIRFLOW__METRICS__STATSD_ON": "False",
        "AIRFLOW__METRICS__OTEL_ON": "False",
        "AIRFLOW__TRACES__OTEL_ON": "False",
        # Airflow 3.2.2 has no usage reporting; releases that have it read this
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "DO_NOT_TRACK": "true",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        yield home / "dags"


def _generate_dags(project: Path, target: Path, params: dict) -> None:
    """`kedro airflow create --env airflow ...` (what `make airflow-dag` runs), in-process."""
    from kedro.framework.cli.cli import KedroCLI

    args = [
        "airflow",
        "create",
        "--env=airflow",
        "--pipelines=train_eval_seeds,ablations",
        f"--jinja-file={project / 'conf/airflow/dag_template.j2'}",
        f"--target-dir={target}",
        "--params=" + ",".join(f"{k}={v}" for k, v in flatten(params).items()),
    ]
    result = CliRunner().invoke(KedroCLI(project_path=project), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_airflow_runs_each_seed_as_an_independent_kedro_run(tmp_path_factory, airflow_dags):
    project = copy_project(tmp_path_factory.mktemp("airflow_project"))
    run_pipeline(project, "synthetic_data")  # the tiny raw features every run ingests
    _generate_dags(
        project,
        airflow_dags,
        {
            "seeds": " ".join(map(str, SEEDS)),
            "mlflow_tracking_uri": f"sqlite:///{project / 'mlflow.db'}",
            "runtime_params": TINY,
        },
    )
    assert sorted(p.name for p in airflow_dags.glob("*.py")) == [
        "co2net_pipeline_airflow_ablations_dag.py",
        "co2net_pipeline_airflow_train_eval_seeds_dag.py",
    ]

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CO2NET_PROJECT_DIR", str(project))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(airflow_dags), include_examples=False)
        assert bag.import_errors == {}
        ablations = bag.dags["co2net_pipeline_ablations"]
        assert len(ablations.task_ids) == len(_studies()["ablations"]) + 1
        dag = bag.dags["co2net_pipeline_train_eval_seeds"]
        seed_tasks = {f"seed_{s}" for s in SEEDS}
        assert set(dag.task_ids) == seed_tasks | {"collect_runs"}
        assert dag.task_dict["collect_runs"].upstream_task_ids == seed_tasks
        assert all(not dag.task_dict[t].upstream_task_ids for t in seed_tasks)

        try:
            with one_torch_thread():
                from airflow.utils.db import initdb

                initdb()
                dag_run = dag.test()
                states = {t.task_id: t.state for t in dag_run.get_task_instances()}
                assert dag_run.state == "success", states
        finally:
            _forget_mlflow_run()  # else kedro-mlflow's hook re-opens our last run in later sessions

    runs = find_runs(project, "tags.orchestrator = 'airflow'")
    assert len(runs) == len(SEEDS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["airflow_run_id"] for r in runs} == {dag_run.run_id}
    histories = []
    for run in runs:
        seed = run.data.params["training.seed"]
        assert run.data.params["snippet_sampling.seed"] == seed
        assert run.data.params["snippet_sampling.split_seed"] == "3552"  # one held-out split
        assert run.data.params["model.feature_dim"] == "8"  # the runtime params reached the run
        assert run.data.tags["study"] == "seeds"
        assert run.data.tags["seed"] == seed
        assert run.data.tags["configuration"] == f"seed_{seed}"
        assert run.data.tags["airflow_dag_id"] == dag.dag_id
        assert run.info.run_name == f"seeds/seed_{seed}"
        assert {"detection_metrics.map_0.5", "detection_metrics.avg_0.1-0.7"} <= set(
            run.data.metrics
        )
        out = project / f"data/airflow_runs/seeds/seed_{seed}"
        assert (out / "data/07_model_output/proposals.parquet").is_file()
        assert (out / "checkpoints/last.pt").is_file()
        history = mlflow.MlflowClient().get_metric_history(
            run.info.run_id, "training_metrics.loss_total"
        )
        histories.append([m.value for m in history])
    assert sorted(r.data.params["training.seed"] for r in runs) == sorted(map(str, SEEDS))
    assert histories[0] != histories[1]  # the seed changed the training, not only a label
    assert not (project / "data/07_model_output").exists()  # the project's own outputs untouched

    table = pd.read_csv(project / "data/airflow_runs/seeds/runs.csv", index_col=[0, 1])
    assert list(table.columns) == [*(f"seed_{s}" for s in SEEDS), "mean", "std"]
    values = [r.data.metrics["detection_metrics.map_0.5"] for r in runs]
    assert table.loc[("metric", "map_0.5"), "mean"] == pytest.approx(sum(values) / len(values))


def test_orchestration_imports_no_heavy_package():
    """Airflow imports the module on every parse of a DAG file: only the standard library then."""
    import subprocess
    import sys

    code = (
        "import sys, co2net_pipeline.studies.airflow; "
        "print(sorted(m for m in ('torch', 'pandas', 'numpy', 'kedro', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
