"""The model registry: versions count up per group; a status changes."""

from __future__ import annotations

import pytest

from mlcicd.errors import NotFoundError
from mlcicd.state import State
from tests.state.helpers import register_package


def test_model_versions_count_up_per_group(state: State) -> None:
    assert [register_package(state, s) for s in ("a", "b", "c")] == [1, 2, 3]
    assert state.find_model_package("iris", "b").version == 2  # type: ignore[union-attr]
    state.set_model_package_status("iris", 2, "Rejected", reason="gate")
    assert state.get_model_package("iris", 2).status == "Rejected"
    with pytest.raises(NotFoundError):
        state.get_model_package("iris", 9)


def test_an_explanations_sha256_is_kept_by_every_package_sharing_the_report(
    state: State,
) -> None:
    """The report's key follows from the group, training job and model digest: every package
    of that model and job gets the sha256, no other one, and the rest of the lineage stays."""
    register_package(state, "a")
    register_package(state, "a", status="Rejected")
    register_package(state, "b")
    count = state.record_explanation("iris", "a", "job", uri="file:///r.json", sha256="f" * 64)
    assert count == 2
    recorded = {"uri": "file:///r.json", "sha256": "f" * 64}
    assert [state.get_model_package("iris", v).lineage.get("explanation") for v in (1, 2, 3)] == [
        recorded,
        recorded,
        None,
    ]
    assert state.record_explanation("iris", "a", "other-job", uri="x", sha256="0") == 0
    assert state.record_explanation("iris", "a", None, uri="x", sha256="0") == 0
