"""The package's public names: what callers import from ``mlcicd.state``."""

from __future__ import annotations

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
        "ModelPackage",
        "MonitoringExecution",
        "Run",
        "StageExecution",
        "State",
        "TrainingJobRecord",
    }
    assert len(mlcicd.state.__all__) == len(set(mlcicd.state.__all__))
    assert all(hasattr(mlcicd.state, name) for name in mlcicd.state.__all__)
