"""The package: its curated public names, and its modules layered without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import mlcicd.state


def test_the_public_names_are_curated() -> None:
    assert set(mlcicd.state.__all__) == {
        "COMPLETED",
        "FAILED",
        "SCHEMA_VERSION",
        "SKIPPED",
        "WITH_VIOLATIONS",
        "Approval",
        "Delivery",
        "EndpointChange",
        "EndpointConfigRecord",
        "EndpointRecord",
        "Event",
        "ModelBaseline",
        "MinuteMetrics",
        "ModelPackage",
        "MonitoringExecution",
        "ProcessingJobRecord",
        "Run",
        "StageExecution",
        "State",
        "TrainingJobRecord",
        "TransformJobRecord",
    }
    assert len(mlcicd.state.__all__) == len(set(mlcicd.state.__all__))
    assert all(hasattr(mlcicd.state, name) for name in mlcicd.state.__all__)


# The package's modules, each importing only those before it: no cycle inside the package.
LAYERS = [
    "schema",
    "records",
    "db",
    "events",
    "runs",
    "queue",
    "approvals",
    "registry",
    "endpoints",
    "monitoring",
    "processing",
    "transforms",
    "metric_history",
]


def test_each_module_imports_only_the_modules_below_it() -> None:
    package = Path(mlcicd.state.__file__).parent
    assert sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__") == sorted(LAYERS)
    for position, name in enumerate(LAYERS):
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {
            node.module.removeprefix("mlcicd.state.")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("mlcicd.state.")
        }
        assert imported <= set(LAYERS[:position]), f"{name} imports {imported}"
