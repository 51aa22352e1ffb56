"""Study pipelines (train_eval_seeds, ablations) and the training_ml pyfunc model.

The integration tests share one tiny project (kedro_helpers.tiny_trained_project: synthetic
data + one train_eval run) and add their own runs to it.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro_helpers import artifact_paths, find_runs, run_pipeline, tiny_trained_project

from co2net_pipeline.data.frames import feature_columns, features_to_frame, frame_to_features
from co2net_pipeline.kedro_glue.datasets import TorchModelDataset
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.model import ModelConfig
from co2net_pipeline.method.proposals import PROPOSAL_COLUMNS
from co2net_pipeline.params.overrides import (
    PARAM_GROUPS,
    ablation_overrides,
    configuration_overrides,
    configuration_params,
    merge_overrides,
    select_ablations,
)
from co2net_pipeline.pipelines.training_ml.nodes import detect_new_videos, infer_new_videos
from co2net_pipeline.studies.in_process import (
    ConfigurationResult,
    ablation_study_tables,
    mean_std,
    run_chain,
    seed_study_tables,
    to_markdown,
)

ROOT = Path(__file__).resolve().parents[1]


def _base_params() -> dict:
    params: dict = {}
    for path in sorted((ROOT / "conf/base").glob("parameters_*.yml")):
        params.update(yaml.safe_load(path.read_text()))
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tiny_trained_project(tmp_path_factory)


# ---- library ------------------------------------------------------------------------------


def test_configuration_params_merge_overrides_and_seed_both_streams():
    base = _base_params()
    name, seed_7, _ = configuration_overrides(base["studies"], "seeds", 7)
    overrides = merge_overrides(seed_7, {"loss": {"weights": {"mutual": 0.0}}})
    cfg = configuration_params(base, overrides, checkpoint_subdir=f"seeds/{name}")
    assert cfg["loss"]["weights"]["mutual"] == 0.0
    assert cfg["loss"]["weights"]["norm"] == base["loss"]["weights"]["norm"]  # nested merge
    assert cfg["training"]["seed"] == 7 and cfg["snippet_sampling"]["seed"] == 7
    assert cfg["training"]["checkpoint_dir"].endswith("checkpoints/seeds/seed_7")
    assert (
        base["training"]["seed"] == 3552 and base["loss"]["weights"]["mutual"] == 1.0
    )  # untouched
    assert set(cfg) == set(PARAM_GROUPS)
    with pytest.raises(ValueError, match="unknown parameter groups"):
        configuration_params(base, {"modle": {}})


def test_every_configured_ablation_is_a_valid_model_and_loss():
    base = _base_params()
    ablations = base["studies"]["ablations"]
    expected = {
        "full",
        "no_co_activity",
        "no_mutual",
        "no_norm_opposite",
        "mutual_mae",
        "mutual_kl",
        "mutual_js",
        "ccm_local_local",
        "ccm_local_global",
        "fusion_add",
        "fusion_concat",
        "fusion_se",
    }
    assert expected <= set(ablations)
    reference = (
        ModelConfig.from_dict({**base["model"], "n_classes": 20}),
        LossConfig.from_dict(base["loss"]),
    )
    for name, entry in ablations.items():
        cfg = configuration_params(base, ablation_overrides(entry, name))
        model = ModelConfig.from_dict({**cfg["model"], "n_classes": 20})
        loss = LossConfig.from_dict(cfg["loss"])
        assert ((model, loss) == reference) == (name == "full"), name
    with pytest.raises(ValueError, match="unknown keys"):
        ablation_overrides({"modle": {"fusion": "add"}}, "typo")


def test_ablation_selection_and_list_parameters():
    ablations = {"full": {}, "mutual_kl": {}, "fusion_se": {}}
    assert select_ablations(ablations, None) == ["full", "mutual_kl", "fusion_se"]
    assert select_ablations(ablations, "fusion_se full") == ["fusion_se", "full"]  # --params form
    assert select_ablations(ablations, ["mutual_kl"]) == ["mutual_kl"]
    with pytest.raises(ValueError, match="not in studies.ablations"):
        select_ablations(ablations, ["fusion_xx"])


def test_mean_std_and_markdown():
    table = pd.DataFrame(
        {"map_0.5": [0.1, 0.3], "run_id": ["a", "b"]}, index=pd.Index(["1", "2"], name="seed")
    )
    mean, std = mean_std(table, ["map_0.5"])
    assert mean["map_0.5"] == pytest.approx(0.2) and std["map_0.5"] == pytest.approx(
        np.std([0.1, 0.3], ddof=1)
    )
    assert mean_std(table.iloc[:1], ["map_0.5"])[1]["map_0.5"] == 0.0
    md = to_markdown(table, percent_columns=["map_0.5"], title="T")
    assert "| seed | map_0.5 | run_id |" in md and "| 2 | 30.00 | b |" in md


def test_new_video_features_frame_round_trip_and_errors():
    rng = np.random.default_rng(0)
    features = {
        "v1": rng.normal(size=(5, 6)).astype(np.float32),
        "v0": rng.normal(size=(3, 6)).astype(np.float32),
    }
    frame = features_to_frame(features)
    assert list(frame.columns) == ["video_id", "snippet", *feature_columns(3)]
    assert feature_columns(2) == ["rgb_0", "rgb_1", "flow_0", "flow_1"]
    back = frame_to_features(frame.sample(frac=1.0, random_state=0))  # row order does not matter
    assert set(back) == {"v0", "v1"}
    for vid, feat in features.items():
        np.testing.assert_array_equal(back[vid], feat)
    with pytest.raises(ValueError, match="v1: snippet column"):
        frame_to_features(frame.drop(index=2))
    with pytest.raises(ValueError, match="missing columns flow_2"):
        frame_to_features(frame.drop(columns="flow_2"))


def test_run_chain_runs_a_pipeline_on_memory_and_keeps_every_output():
    from kedro.pipeline import Pipeline, node

    def double(x, params):
        return [v * params["factor"] for v in x]

    def total(doubled):
        return sum(doubled)

    chain = Pipeline(
        [
            node(double, ["numbers", "params:scale"], "doubled", name="double"),
            node(total, "doubled", "total", name="total"),
        ]
    )
    numbers = [1, 2, 3]
    out = run_chain(chain, {"numbers": numbers}, {"scale": {"factor": 2}})
    assert out["doubled"] == [2, 4, 6] and out["total"] == 12  # intermediate output kept
    assert out["numbers"] is numbers  # inputs are passed as they are, not copied
    with pytest.raises(ValueError, match=r"needs \['params:scale'\]"):
        run_chain(chain, {"numbers": numbers}, {})
    with pytest.raises(ValueError, match=r"needs \['numbers', 'params:scale'\]"):
        run_chain(chain, {}, {})


def _result(name: str, avg: float, loss: float = 1.0) -> ConfigurationResult:
    return ConfigurationResult(
        name=name,
        detection={"map_0.5": avg + 0.1, "avg_0.1-0.7": avg},
        loss_summary={"loss_total_final": loss},
        selected_iteration=12,
        seconds=1.0,
        run_id=f"run_{name}",
    )


def test_ablation_and_seed_tables_from_results():
    ablations = {
        "full": {"group": "reference", "paper_avg": 44.6},
        "mutual_kl": {"group": "mutual_metric", "paper_avg": 43.8, "loss": {"mutual_metric": "kl"}},
    }
    results = [_result("full", 0.30), _result("mutual_kl", 0.25)]
    metrics, table, markdown = ablation_study_tables(ablations, results)
    assert list(table.index) == ["full", "mutual_kl"]
    assert table.loc["mutual_kl", "delta_avg_0.1-0.7"] == pytest.approx(-0.05)
    assert table.loc["mutual_kl", "paper_avg"] == pytest.approx(0.438)
    assert table.loc["full", "overrides"] == "(reference)"
    assert table.loc["mutual_kl", "run_id"] == "run_mutual_kl"
    assert metrics["mutual_kl.avg_0.1-0.7"] == {"value": 0.25, "step": 0}
    assert (
        "| mutual_kl | mutual_metric | loss.mutual_metric=kl | 35.00 | 25.00 | -5.00 | 43.80 |"
        in (markdown)
    )

    metrics, table, markdown = seed_study_tables([3552, 1], [_result("a", 0.2), _result("b", 0.4)])
    assert list(table.index) == ["3552", "1", "mean", "std"]
    assert metrics["avg_0.1-0.7_mean"]["value"] == pytest.approx(0.3)
    assert metrics["avg_0.1-0.7_std"]["value"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert "| mean ± std | 40.00 ± 14.14 | 30.00 ± 14.14 | 1 ± 0 |" in markdown


# ---- pipelines ----------------------------------------------------------------------------


def _pipeline_runs(project: Path, pipeline: str) -> list:
    """The (top-level) runs of `kedro run --pipelines=<pipeline>`, newest first (run names may
    add `/<seed and configuration>` after the pipeline; nested runs are `<study>/<name>`)."""
    return [
        r
        for r in find_runs(project)
        if r.info.run_name.split("/")[0] == pipeline and "mlflow.parentRunId" not in r.data.tags
    ]


def _children(project: Path, parent_id: str) -> list:
    return find_runs(project, f"tags.mlflow.parentRunId = '{parent_id}'")


@pytest.mark.slow
def test_train_eval_seeds_logs_nested_runs_and_mean_std(project):
    run_pipeline(project, "train_eval_seeds", {"studies": {"seeds": [3552, 7]}})
    parent = _pipeline_runs(project, "train_eval_seeds")[0]
    children = _children(project, parent.info.run_id)
    assert sorted(c.data.params["training.seed"] for c in children) == ["3552", "7"]
    for child in children:
        assert child.data.params["snippet_sampling.seed"] == child.data.params["training.seed"]
        assert child.data.tags["study"] == "seeds"
        assert child.data.tags["data_source"] == "synthetic"  # inherited from the parent run
        assert child.data.tags["feature_fingerprint"] == parent.data.tags["feature_fingerprint"]
        # the tags the training and proposals nodes return (training_tags, proposal_tags)
        assert child.data.tags["model_selection"] == "last"
        assert child.data.tags["selected_iteration"] == "11"
        assert "ambiguous_filter" in child.data.tags
        assert {
            "detection_metrics.map_0.5",
            "detection_metrics.avg_0.1-0.7",
            "loss_summary.loss_total_final",
        } <= set(child.data.metrics)
        history = mlflow.MlflowClient().get_metric_history(
            child.info.run_id, "training_metrics.loss_total"
        )
        assert [m.step for m in history] == list(range(12))

    metrics = parent.data.metrics
    for name in ("map_0.1", "map_0.5", "map_0.9", "avg_0.1-0.5", "avg_0.1-0.7", "avg_0.1-0.9"):
        values = [c.data.metrics[f"detection_metrics.{name}"] for c in children]
        assert metrics[f"seeds.{name}_mean"] == pytest.approx(np.mean(values))
        assert metrics[f"seeds.{name}_std"] == pytest.approx(np.std(values, ddof=1))

    table = pd.read_csv(project / "data/08_reporting/studies/seeds.csv", index_col="seed")
    assert list(table.index.astype(str)) == ["3552", "7", "mean", "std"]
    assert table.loc["mean", "map_0.5"] == pytest.approx(metrics["seeds.map_0.5_mean"])
    assert {"studies/seeds.csv", "studies/seeds.md"} <= artifact_paths(parent.info.run_id)
    assert "mean ± std" in (project / "data/08_reporting/studies/seeds.md").read_text()

    # seed 3552 is train_eval's seed: same plan, same weights, so the same mAPs (library reuse)
    train_eval = _pipeline_runs(project, "train_eval")[-1]
    assert parent.data.tags["feature_fingerprint"] == train_eval.data.tags["feature_fingerprint"]
    same_seed = next(c for c in children if c.data.params["training.seed"] == "3552")
    for name, value in train_eval.data.metrics.items():
        if name.startswith("detection_metrics."):
            assert same_seed.data.metrics[name] == pytest.approx(value), name


@pytest.mark.slow
def test_ablations_make_one_comparison_table(project):
    run_pipeline(project, "ablations", {"studies": {"ablation_selection": ["full", "mutual_kl"]}})
    parent = _pipeline_runs(project, "ablations")[0]
    children = {c.data.tags["configuration"]: c for c in _children(project, parent.info.run_id)}
    assert set(children) == {"full", "mutual_kl"}
    assert children["mutual_kl"].data.params["loss.mutual_metric"] == "kl"
    assert children["full"].data.params["loss.mutual_metric"] == "mse"
    assert children["mutual_kl"].data.tags["ablation_group"] == "mutual_metric"

    table = pd.read_csv(
        project / "data/08_reporting/studies/ablations.csv", index_col="configuration"
    )
    assert list(table.index) == ["full", "mutual_kl"]
    assert table.loc["mutual_kl", "overrides"] == "loss.mutual_metric=kl"
    assert table.loc["full", "delta_avg_0.1-0.7"] == 0.0
    assert table.loc["mutual_kl", "paper_avg"] == pytest.approx(0.438)
    for name, child in children.items():
        assert table.loc[name, "run_id"] == child.info.run_id
        assert table.loc[name, "avg_0.1-0.7"] == pytest.approx(
            child.data.metrics["detection_metrics.avg_0.1-0.7"]
        )
        assert parent.data.metrics[f"ablations.{name}.avg_0.1-0.7"] == pytest.approx(
            table.loc[name, "avg_0.1-0.7"]
        )
    markdown = (project / "data/08_reporting/studies/ablations.md").read_text()
    assert "| mutual_kl | mutual_metric | loss.mutual_metric=kl |" in markdown
    assert {"studies/ablations.csv", "studies/ablations.md"} <= artifact_paths(parent.info.run_id)


@pytest.mark.slow
def test_training_ml_logs_a_pyfunc_model_that_detects_on_new_features(project):
    run_pipeline(project, "training_ml")
    run = _pipeline_runs(project, "training_ml")[0]
    experiment = mlflow.get_experiment_by_name("co2net")
    models = [
        m
        for m in mlflow.search_logged_models(
            experiment_ids=[experiment.experiment_id], output_format="list"
        )
        if m.source_run_id == run.info.run_id
    ]
    assert [m.name for m in models] == ["co2net_detector"]
    model = mlflow.pyfunc.load_model(models[0].model_uri)

    frame = pd.read_parquet(project / "data/05_model_input/new_video_features.parquet")
    assert frame["video_id"].nunique() == 2  # params training_ml.n_example_videos
    detections = model.predict(frame)
    assert list(detections.columns) == PROPOSAL_COLUMNS
    assert len(detections) > 0 and set(detections["video_id"]) <= set(frame["video_id"])

    # the same as running the inference nodes by hand on the trained model
    classlist = pd.read_json(project / "data/03_primary/classlist.json", typ="series").tolist()
    trained = TorchModelDataset(filepath=str(project / "data/06_models/co2net.pt")).load()
    cas = infer_new_videos(frame, trained, _base_params()["inference"])  # as the logged model
    expected = detect_new_videos(cas, classlist, _base_params()["proposals"])
    pd.testing.assert_frame_equal(
        detections.reset_index(drop=True), expected.reset_index(drop=True)
    )

    # float32 features pass the schema; parameters of the inference part can be overridden
    as_float32 = frame.astype(
        {c: "float32" for c in frame.columns if c.startswith(("rgb_", "flow_"))}
    )
    pd.testing.assert_frame_equal(model.predict(as_float32), detections)
    one_threshold = {**_base_params()["proposals"], "attention_thresholds": [0.5]}
    fewer = model.predict(frame, params={"proposals": one_threshold})
    assert 0 < len(fewer) < len(detections)
    pd.testing.assert_frame_equal(
        fewer.reset_index(drop=True),
        detect_new_videos(cas, classlist, one_threshold).reset_index(drop=True),
    )
