"""A recorded endpoint by name, through the backend that deployed it (no endpoint is served
here: the records alone, and a backend that has lost the endpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.endpoints import recorded
from mlcicd.endpoints.base import OUT_OF_SERVICE
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.endpoints.refresh import GONE
from mlcicd.errors import NotFoundError
from mlcicd.project import Project
from tests.conftest import make_repo
from tests.helpers import record_endpoint


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(make_repo(tmp_path / "iris"))


def test_an_unknown_name_fails_naming_the_recorded_ones(project: Project) -> None:
    with pytest.raises(NotFoundError, match=r"endpoint nope does not exist \(endpoints: none yet"):
        recorded.recorded(project, "nope")
    record_endpoint(project.state, "iris-classifier-endpoint", 1)
    with pytest.raises(NotFoundError, match=r"\(endpoints: iris-classifier-endpoint\)"):
        recorded.backend_of(project, "nope")
    assert recorded.recorded(project, "iris-classifier-endpoint").model_version == 1
    assert isinstance(
        recorded.backend_of(project, "iris-classifier-endpoint"), LocalEndpointBackend
    )


def test_live_records_what_the_backend_reports(project: Project) -> None:
    record_endpoint(project.state, "iris-classifier-endpoint", 1)  # InService, but no files
    record, described = recorded.live(project, "iris-classifier-endpoint")
    assert described.status == record.status == OUT_OF_SERVICE
    assert record.failure_reason == GONE and record.model_version == 1
    assert project.state.get_endpoint("iris-classifier-endpoint") == record


def test_delete_an_unknown_or_lost_endpoint_fails(project: Project) -> None:
    with pytest.raises(NotFoundError, match="endpoint nope does not exist"):
        recorded.delete(project, "nope")
    record_endpoint(project.state, "iris-classifier-endpoint", 1)
    with pytest.raises(NotFoundError, match="endpoint iris-classifier-endpoint does not exist"):
        recorded.delete(project, "iris-classifier-endpoint")  # the backend has no such endpoint
    assert project.state.get_endpoint("iris-classifier-endpoint") is not None
