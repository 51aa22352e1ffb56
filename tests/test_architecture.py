"""Where things live, enforced (issues 16 and 21).

The import rules (layers import downwards only, framework-free method and data layers, plain
stage nodes, no cycles, a pipeline's nodes import no other pipeline's nodes) are import-linter
contracts in pyproject.toml; `test_import_contracts` runs them. What import-linter cannot see is
checked here: imports made at run time, function and class length, the catalog's kedro-viz
layers and train_eval's stage namespaces.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "co2net_pipeline"


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = _run([str(lint_imports), "--no-cache", "--no-logo"])
    assert done.returncode == 0, done.stdout + done.stderr


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def test_every_nodes_module_is_a_stage_or_a_study():
    """A new pipeline's nodes fall under the stage-node contract unless they run studies."""
    stage_contract = next(c for n, c in _contracts().items() if n.startswith("Stage nodes"))
    stages = {m.split(".")[-2] for m in stage_contract["source_modules"]}
    studies = {"ablations", "train_eval_seeds"}
    found = {path.parent.name for path in (PACKAGE / "pipelines").glob("*/nodes.py")}
    assert found == stages | studies
    assert not stages & studies


# The frameworks the method layer must run without (pyproject.toml's forbidden contract).
FRAMEWORKS = (
    "kedro",
    "kedro_datasets",
    "kedro_mlflow",
    "mlflow",
    "click",
    "pydantic",
    "airflow",
    "matplotlib",
)
_BLOCK_FRAMEWORKS = f"""
import importlib.abc
import sys

BLOCKED = {FRAMEWORKS!r}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is made unimportable by the test")
        return None


assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED], "imported at start-up"
sys.meta_path.insert(0, Blocker())
"""


def _run_without_frameworks(code: str) -> subprocess.CompletedProcess:
    script = _BLOCK_FRAMEWORKS + textwrap.dedent(code)
    return _run([sys.executable, "-c", script])


def test_the_blocker_blocks():
    done = _run_without_frameworks("import pydantic")
    assert done.returncode != 0 and "made unimportable by the test" in done.stderr


def test_method_layer_imports_without_frameworks():
    done = _run_without_frameworks(
        """
        import co2net_pipeline.method.model
        import co2net_pipeline.method.losses
        import co2net_pipeline.method.sampler
        import co2net_pipeline.method.feature_bank
        import co2net_pipeline.method.checkpoints
        import co2net_pipeline.method.training
        import co2net_pipeline.method.inference
        import co2net_pipeline.method.proposals
        import co2net_pipeline.method.metric
        import co2net_pipeline.method.selection
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_method_layer_runs_without_frameworks():
    """Imports made inside functions count too: a tiny CO2-Net's detections and their mAP."""
    done = _run_without_frameworks(
        """
        import numpy as np
        import pandas as pd
        import torch

        from co2net_pipeline.method.inference import InferenceConfig, detect_videos
        from co2net_pipeline.method.metric import evaluate_detections
        from co2net_pipeline.method.model import ModelConfig, build_model
        from co2net_pipeline.method.proposals import ProposalParams

        torch.manual_seed(0)
        config = {"feature_dim": 4, "attention_hidden": 8, "n_classes": 2}
        model = build_model(ModelConfig.from_dict(config))
        trained = {"state_dict": model.state_dict(), "model_config": config, "classlist": ["A", "B"]}
        features = {"v1": np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)}
        settings, proposals = InferenceConfig(device="cpu"), ProposalParams(class_threshold=0.0)
        detections = detect_videos(trained, features, settings, proposals)
        assert len(detections) > 0
        truth = pd.DataFrame({"video_id": ["v1"], "t_start": [5.0], "t_end": [20.0], "label": ["A"]})
        result = evaluate_detections(detections, truth, [0.1, 0.5])
        assert 0.0 <= result.map[0.1] <= 1.0
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ---- size -------------------------------------------------------------------------------------

MAX_LINES = 80


def test_no_function_or_class_over_80_lines():
    """Every function and class in src/ (methods and nested ones included), from its `def` or
    `class` line to its last line."""
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    too_long[f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}"] = lines
    assert too_long == {}


# ---- what kedro viz shows ---------------------------------------------------------------------

KEDRO_VIZ_LAYERS = {
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
}


def test_every_catalogued_dataset_has_a_layer():
    import yaml

    conf = ROOT / "conf"
    layers = {}
    for path in sorted(conf.glob("*/catalog*.yml")):
        for name, entry in (yaml.safe_load(path.read_text()) or {}).items():
            if name.startswith("_") or not isinstance(entry, dict):
                continue  # YAML anchors
            layers[f"{path.parent.name}/{name}"] = (
                (entry.get("metadata") or {}).get("kedro-viz", {}).get("layer")
            )
    assert layers, "no catalog entry found"
    assert {k: v for k, v in layers.items() if v not in KEDRO_VIZ_LAYERS} == {}
    assert layers["base/feature_store"] == "feature"
    # reports sit in the layer of what they describe, beside their producer (no edge across
    # the whole graph down to the reporting layer)
    assert layers["base/validation_report"] == layers["base/videos"] == "primary"
    assert layers["base/loss_curves_plot"] == layers["base/training_history"] == "model_output"


def test_train_eval_stages_are_namespaces_over_global_datasets():
    from co2net_pipeline.pipelines.train_eval.pipeline import (
        STAGES,
        create_configuration_pipeline,
        create_pipeline,
    )

    train_eval = create_pipeline()
    assert [n.namespace for n in train_eval.nodes] == sorted(
        (n.namespace for n in train_eval.nodes), key=list(STAGES).index
    )
    assert {n.namespace for n in train_eval.nodes} == set(STAGES)
    assert all(n.name.startswith(f"{n.namespace}.") for n in train_eval.nodes)
    # dataset names stay those of the catalog and of the stage pipelines run on their own
    stages = [STAGES[name].create_pipeline() for name in STAGES]
    assert train_eval.datasets() == set().union(*(p.datasets() for p in stages))
    # what a study configuration runs: train_eval from the data split on, same nodes
    chain = create_configuration_pipeline()
    assert "data_split" in chain.inputs() and "feature_ingestion" not in {
        n.namespace for n in chain.nodes
    }
    assert {n.name for n in chain.nodes} < {n.name for n in train_eval.nodes}
