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
