"""Data flows one way: catalog → node → library → node → catalog (issue 16).

Library modules never import `co2net_pipeline.pipelines` (only Kedro's registry finds the
pipelines), and a pipeline's nodes import no other pipeline's nodes: what two stages share
lives in a library module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "co2net_pipeline"


def _imports(source: str, package: str) -> list[str]:
    """Every module and name `source` imports, at any depth (also inside functions); relative
    imports resolved against `package` (the importing module's package)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def _module_imports(path: Path) -> list[str]:
    package = ".".join(path.relative_to(PACKAGE.parent).parts[:-1])
    return _imports(path.read_text(), package)


def test_import_scan_resolves_relative_and_nested_imports():
    source = "from .nodes import a\n\ndef f():\n    from ..training import nodes\n"
    names = _imports(source, "co2net_pipeline.pipelines.proposals")
    assert "co2net_pipeline.pipelines.proposals.nodes.a" in names
    assert "co2net_pipeline.pipelines.training.nodes" in names


def test_library_modules_do_not_import_pipelines():
    offenders = {
        str(path.relative_to(PACKAGE)): name
        for path in PACKAGE.rglob("*.py")
        if "pipelines" not in path.relative_to(PACKAGE).parts
        for name in _module_imports(path)
        if name.startswith("co2net_pipeline.pipelines")
    }
    assert offenders == {}


def test_nodes_do_not_import_other_nodes():
    offenders = {}
    for path in (PACKAGE / "pipelines").glob("*/nodes.py"):
        own = f"co2net_pipeline.pipelines.{path.parent.name}."
        for name in _module_imports(path):
            foreign = name.startswith("co2net_pipeline.pipelines.") and not name.startswith(own)
            if foreign and ".nodes" in name:
                offenders[str(path.relative_to(PACKAGE))] = name
    assert offenders == {}


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

    conf = PACKAGE.parents[1] / "conf"
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
