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
