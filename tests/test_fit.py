"""`method.fit.fit_co2net`: the training node's one library call (selection, test curve,
artifact, metric histories, run tags) on a tiny feature store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from co2net_pipeline.data.store import FeatureStore, write_feature_store
from co2net_pipeline.method.fit import ScoringSettings, fit_co2net
from co2net_pipeline.method.losses import LossConfig
from co2net_pipeline.method.proposals import ProposalParams
from co2net_pipeline.method.sampler import make_sampling_plan, multi_hot
from co2net_pipeline.method.training import TrainConfig

D = 32  # channels per modality: features are (T, 2 x 32)
CLASSES = ["Jump", "Run", "Swim"]
MODEL = {"feature_dim": D, "attention_hidden": 8}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """12 train videos (4 per class) and 3 test videos with one segment each, in a store."""
    rng = np.random.default_rng(0)
    rows, segments, features = [], [], {}
    for i in range(15):
        vid, label = f"video_{i:02d}", CLASSES[i % 3]
        n = int(rng.integers(20, 40))
        features[vid] = rng.standard_normal((n, 2 * D)).astype(np.float32)
        rows.append((vid, "validation" if i < 12 else "test", n, [label]))
        segments.append((vid, label, 3, 12))
    videos = pd.DataFrame(rows, columns=["video_id", "subset", "n_snippets", "labels"])
    segments = pd.DataFrame(segments, columns=["video_id", "label", "start_snippet", "end_snippet"])
    path = tmp_path_factory.mktemp("fit") / "store.h5"
    write_feature_store(path, features.items(), attrs={"feature_dim": D})
    ids = videos["video_id"].tolist()
    split = {"train": ids[:12], "heldout": [], "test": ids[12:]}
    labels = multi_hot(videos["labels"][:12], CLASSES)
    plan = make_sampling_plan(split["train"], labels, 6, batch_size=6, n_similar=2, seed=1)
    ambiguous = pd.DataFrame({"video_id": [], "t_start_s": [], "t_end_s": []})
    return FeatureStore(path), videos, segments, ambiguous, split, plan


def _fit(tables, tmp_path, selection: str):
    store, videos, segments, ambiguous, split, plan = tables
    train_cfg = TrainConfig(
        max_iter=6, interval=2, batch_size=6, n_similar=2, max_seqlen=16, lr=1e-3,
        device="cpu", selection=selection,
    )  # fmt: skip
    return fit_co2net(
        store, videos, segments, ambiguous, CLASSES, split, plan,
        model_params=MODEL,
        loss_cfg=LossConfig(),
        train_cfg=train_cfg,
        proposals=ProposalParams(class_threshold=0.0),
        scoring=ScoringSettings(
            subset="test", tiou=[0.1, 0.3, 0.5], selection_average="0.1:0.5", curve_every=2
        ),
        reference_stream=False,
        checkpoint_dir=tmp_path / "checkpoints",
        progress=False,
        log_every=2,
    )  # fmt: skip


def test_oracle_selection_test_curve_and_records_agree(tables, tmp_path):
    fitted = _fit(tables, tmp_path, "oracle_test")
    artifact, metrics, curve = fitted.artifact, fitted.training_metrics, fitted.test_curve
    # selection scores (iterations 2, 4) are the test curve's averages there: one shared pass
    scores = {p["step"]: p["value"] for p in metrics["selection_score"]}
    averages = {p["step"]: p["value"] for p in curve["avg_0.1-0.5"]}
    assert sorted(scores) == [2, 4] and sorted(averages) == [2, 4, 5]
    assert all(scores[s] == averages[s] for s in scores)
    # the first best score is the selected checkpoint, recorded in artifact and tags
    best_step = max(scores, key=lambda s: (scores[s], -s))
    assert artifact["selected_iteration"] == best_step == fitted.train.selected_iteration
    assert fitted.tags == {
        "model_selection": "oracle_test",
        "selected_iteration": str(best_step),
        "device": "cpu",
        "oracle_test_selection": "true: checkpoint chosen on the TEST set",
    }
    assert artifact["classlist"] == CLASSES and artifact["selection"] == "oracle_test"
    assert artifact["model_config"].items() >= {**MODEL, "n_classes": 3}.items()
    # best_on_test: the curve's best point (step 0), iteration included
    best = max(averages, key=lambda s: (averages[s], -s))
    assert fitted.best_on_test["iteration"] == {"value": best, "step": 0}
    assert fitted.best_on_test["avg_0.1-0.5"]["value"] == averages[best]
    # losses every log_every iterations; the history keeps every iteration
    assert [p["step"] for p in metrics["loss_total"]] == [0, 2, 4]
    assert fitted.train.history["iteration"].tolist() == list(range(6))
    assert (tmp_path / "checkpoints/best.pt").is_file()


def test_heldout_selection_without_heldout_videos_names_the_parameter(tables, tmp_path):
    with pytest.raises(ValueError, match="snippet_sampling.heldout_fraction is 0"):
        _fit(tables, tmp_path, "heldout")
