"""`mlcicd up`'s endpoint watch and a container endpoint whose container dies: a new container
on the same address (its listener started again if it died too), with backoff; one that dies
at start is recorded Failed with its log."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.daemon.endpoint_watch import EndpointWatch
from mlcicd.endpoints import listener, open_backend
from mlcicd.endpoints.podman import RECORD_FILE, PodmanEndpointBackend
from mlcicd.endpoints.refresh import refresh
from mlcicd.fsutil import read_object
from mlcicd.project import Project
from tests.conftest import IRIS, make_repo
from tests.containers.test_endpoints import config, invoke, iris_containers
from tests.helpers import IrisModel, train_iris, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture
def project(iris_image: str, tmp_path: Path, no_containers_left: None) -> Iterator[Project]:
    project = Project(make_repo(tmp_path / "repo"))
    yield project
    backend = open_backend("container", project)
    for described in backend.list():
        backend.delete(described.name)


def deployed(project: Project, image: str, iris: IrisModel) -> PodmanEndpointBackend:
    """Endpoint iris deployed from ``image`` where the watch finds it, and recorded."""
    backend = open_backend("container", project, image=image)
    assert isinstance(backend, PodmanEndpointBackend)
    backend.deploy(config("iris-v1", iris, IRIS / "src"))
    refresh(project.state, backend, "iris")
    return backend


def kill(backend: PodmanEndpointBackend) -> None:
    [generation] = iris_containers(backend)
    name = backend.container_name("iris", generation)
    subprocess.run(["podman", "kill", name], check=True, capture_output=True)
    assert backend.describe("iris").status == "Failed"


def test_a_killed_container_is_restarted_on_the_same_address_with_backoff(
    project: Project, iris_image: str, iris: IrisModel
) -> None:
    backend = deployed(project, iris_image, iris)
    url = backend.describe("iris").url
    watch = EndpointWatch(lambda line: None)
    kill(backend)
    watch.check(project)
    again = backend.describe("iris")
    assert (again.status, again.url, again.config_name) == ("InService", url, "iris-v1")
    assert invoke(str(url)).status == 200
    assert iris_containers(backend) == [2]  # the dead one is removed
    assert project.state.endpoint_history("iris")[-1].reason == "restart"
    [(attempts, _, restarted_at)] = watch._crashes.values()
    assert attempts == 1
    # The first restart took longer than its 1 s backoff: say the backoff is not over yet.
    watch._crashes = {k: (1, time.monotonic() + 60, restarted_at) for k in watch._crashes}
    kill(backend)
    watch.check(project)
    assert backend.describe("iris").status == "Failed"  # it waits out its backoff
    watch._crashes = {k: (1, 0.0, restarted_at) for k in watch._crashes}  # now it is over
    watch.check(project)
    assert backend.describe("iris").url == url and invoke(str(url)).status == 200
    assert "attempt 2" in str(project.state.endpoint_history("iris")[-1].detail)
    record = project.state.get_endpoint("iris")
    assert record is not None and record.status == "InService"


def test_a_restart_that_dies_at_start_is_recorded_failed_with_its_log(
    project: Project, iris_image: str, iris: IrisModel
) -> None:
    backend = deployed(project, iris_image, iris)
    code = Path(
        str((read_object(backend.endpoint_dir("iris") / RECORD_FILE) or {})["serving"]["code_dir"])
    )
    (code / "inference.py").write_text("raise RuntimeError('the handler cannot load: no GPU')\n")
    kill(backend)
    EndpointWatch(lambda line: None).check(project)
    assert project.state.endpoint_history("iris")[-1].reason == "restart_failed"
    assert "no GPU" in str(project.state.endpoint_history("iris")[-1].detail)
    record = project.state.get_endpoint("iris")
    assert record is not None and record.status == "Failed"
    assert record.failure_reason is not None and "no GPU" in record.failure_reason
    assert iris_containers(backend) == [2]  # kept for its log; deleting the endpoint removes it


def test_a_dead_listener_is_started_again_on_the_recorded_port(
    project: Project, iris_image: str, iris: IrisModel
) -> None:
    backend = deployed(project, iris_image, iris)
    url = backend.describe("iris").url
    held = listener.running(backend.endpoint_dir("iris"))
    assert held is not None
    kill(backend)
    os.kill(held["pid"], signal.SIGKILL)  # as a reboot leaves it: nothing holds the port
    wait_for("the listener to exit", lambda: listener.running(backend.endpoint_dir("iris")) is None)
    EndpointWatch(lambda line: None).check(project, restoring=True)
    assert backend.describe("iris").url == url and invoke(str(url)).status == 200
    assert "restored at service start" in str(project.state.endpoint_history("iris")[-1].detail)
