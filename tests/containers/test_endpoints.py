"""deploy.backend: container — the image's `serve`, behind 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlcicd.endpoints import EndpointConfig, ProductionVariant
from mlcicd.endpoints.podman import PodmanEndpointBackend
from mlcicd.errors import EndpointError, NotFoundError
from tests.conftest import IRIS
from tests.containers.conftest import SECRETS, assert_no_secret_in, containers_named, write
from tests.endpoints.test_updates import LoadProcess
from tests.helpers import IrisModel, free_port, train_iris, wait_for
from tests.serving.helpers import Response, request

pytestmark = pytest.mark.integration

# The iris handlers, and a predict_fn that can hold a request: it says it has the request
# (a file in the server's mounted state directory), then sleeps HOLD seconds.
HOLDING = """
import os, time
from inference import input_fn, model_fn, output_fn, predict_fn as iris_predict

def predict_fn(data, model):
    hold = float(os.environ.get("HOLD", "0"))
    if hold:
        open("/var/run/mlcicd-serve/holding", "w").close()
        time.sleep(hold)
    return iris_predict(data, model)
"""
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> IrisModel:
    return train_iris(tmp_path_factory.mktemp("iris"))


@pytest.fixture
def backend(
    iris_image: str, tmp_path: Path, no_containers_left: None
) -> Iterator[PodmanEndpointBackend]:
    backend = PodmanEndpointBackend(tmp_path / "endpoints", iris_image, drain_seconds=20)
    yield backend
    for described in backend.list():
        backend.delete(described.name)


def config(
    name: str,
    model: IrisModel,
    code: Path,
    entry: str = "inference.py",
    port: int | None = None,
    **env: str,
) -> EndpointConfig:
    variant = ProductionVariant(
        name="AllTraffic",
        model_data=model.archive,
        model_sha256=model.sha256,
        code_dir=code,
        entry_point=entry,
        python=Path(sys.executable),
        environment=env,
    )
    return EndpointConfig(
        name=name,
        endpoint_name="iris",
        variants=(variant,),
        workers=1,
        startup_timeout=60,
        port=port,
    )


def iris_containers(backend: PodmanEndpointBackend) -> list[int]:
    """The generations of endpoint iris that have a container."""
    prefix = backend.container_name("iris", 0).removesuffix("0")
    return sorted(int(n.removeprefix(prefix)) for n in containers_named(prefix))


def invoke(url: str) -> Response:
    return request(url, body=json.dumps(ROWS), headers={"Content-Type": "application/json"})


def test_it_answers_as_the_model_does_then_is_deleted(
    backend: PodmanEndpointBackend, iris: IrisModel
) -> None:
    described = backend.deploy(config("iris-v1", iris, IRIS / "src"))
    assert described.status == "InService" and described.url is not None
    assert described.url.startswith("http://127.0.0.1:")
    answer = invoke(described.url)
    assert answer.status == 200
    assert json.loads(answer.body)["predictions"] == iris.model.predict(np.array(ROWS)).tolist()
    # The server's workers write their counts every few seconds, into the mounted directory.
    wait_for(
        "one invocation counted",
        lambda: backend.metrics("iris")["variants"].get("AllTraffic", {}).get("Invocations") == 1,
    )
    backend.delete("iris")
    assert iris_containers(backend) == []
    with pytest.raises(NotFoundError):
        backend.describe("iris")


def test_an_update_drains_the_old_container(
    backend: PodmanEndpointBackend, iris: IrisModel, tmp_path: Path
) -> None:
    code = write(tmp_path / "code" / "holding.py", HOLDING).parent
    write(code / "inference.py", (IRIS / "src" / "inference.py").read_text())
    old = backend.deploy(config("iris-v1", iris, code, "holding.py", HOLD="3"))
    assert old.url is not None
    answers: list[Response] = []
    held = threading.Thread(target=lambda: answers.append(invoke(str(old.url))))
    held.start()
    serve_dir = tmp_path / "endpoints" / "iris" / "serve" / backend.container_name("iris", 1)
    wait_for(
        "the request to hold in the worker", lambda: (serve_dir / "holding").exists(), timeout=30
    )
    new = backend.deploy(config("iris-v2", iris, code, "holding.py"))
    held.join(timeout=60)
    assert [a.status for a in answers] == [200]  # accepted by the old container, answered by it
    assert new.config_name == "iris-v2" and new.url == old.url  # the address stays
    assert invoke(str(new.url)).status == 200
    assert iris_containers(backend) == [2]


def test_a_container_that_dies_at_start_fails_the_update_and_the_old_one_serves(
    backend: PodmanEndpointBackend, iris: IrisModel, tmp_path: Path
) -> None:
    good = backend.deploy(config("iris-v1", iris, IRIS / "src"))
    broken = write(
        tmp_path / "broken" / "inference.py",
        "raise RuntimeError('the handler cannot load: no GPU')\n",
    ).parent
    with pytest.raises(EndpointError) as caught:
        backend.deploy(config("iris-v2", iris, broken))
    assert backend.container_name("iris", 2) in caught.value.headline
    assert "no GPU" in caught.value.headline  # the container's own last log lines
    now = backend.describe("iris")
    assert (now.status, now.config_name, now.url) == ("InService", "iris-v1", good.url)
    assert now.last_update_failure is not None and "no GPU" in now.last_update_failure
    assert invoke(str(good.url)).status == 200
    assert iris_containers(backend) == [1]


def test_an_image_without_serve_says_what_to_add(
    base_image: str, iris: IrisModel, tmp_path: Path, no_containers_left: None
) -> None:
    backend = PodmanEndpointBackend(tmp_path / "endpoints", base_image)
    with pytest.raises(EndpointError, match=rf"image {base_image} has no `serve` on its PATH"):
        backend.deploy(config("iris-v1", iris, IRIS / "src"))
    assert iris_containers(backend) == []


def test_updates_under_load_keep_the_port_and_lose_no_request(
    backend: PodmanEndpointBackend, iris: IrisModel, tmp_path: Path
) -> None:
    """deploy.port fixed: the old container no longer has to stop before the new one starts."""
    port = free_port()
    first = backend.deploy(config("iris-v1", iris, IRIS / "src", port=port))
    assert first.url == f"http://127.0.0.1:{port}"
    broken = write(tmp_path / "broken" / "inference.py", "raise RuntimeError('no GPU')\n").parent
    with LoadProcess(first.url, tmp_path / "load.json") as load:
        second = backend.deploy(config("iris-v2", iris, IRIS / "src", port=port))
        load.more()
        with pytest.raises(EndpointError, match="no GPU"):
            backend.deploy(config("iris-v3", iris, broken, port=port))
        load.more()
        third = backend.deploy(config("iris-v4", iris, IRIS / "src"))  # no port: the same one
        load.more()
        stats = load.stop()
    assert stats["failed"] == 0, stats["failures"]
    assert second.url == third.url == first.url
    assert backend.describe("iris").config_name == "iris-v4"
    assert iris_containers(backend) == [3]  # the failed update took no generation


def test_an_exited_containers_last_line_is_read_even_when_it_came_in_two_writes(
    base_image: str, tmp_path: Path, no_containers_left: None
) -> None:
    """Python with PYTHONUNBUFFERED=1 (as the iris image sets it) writes print()'s text and
    its newline in two writes; when conmon reads between them, `podman logs --tail` of podman
    4.3 shows only the newline (containers/podman#19562) — CI saw 'its log: (empty)' where
    the container had said why it refused the model. The pause makes that split certain."""
    backend = PodmanEndpointBackend(tmp_path / "endpoints", base_image)
    name = backend.container_name("iris", 1)
    said = "serve: refusing to serve the model: it was changed after it was recorded"
    script = (
        f"import sys, time; sys.stderr.write({said!r}); time.sleep(0.5); sys.stderr.write('\\n')"
    )
    volume = f"{tmp_path}:/mnt"  # so that no_containers_left finds it, should it stay
    started = ["podman", "run", "--detach", "--name", name, "--volume", volume]
    started += ["--env", "PYTHONUNBUFFERED=1", base_image]  # as the iris image sets it
    subprocess.run([*started, "python3", "-c", f"{script}; sys.exit(1)"], check=True)
    subprocess.run(["podman", "wait", name], capture_output=True, check=True)
    try:
        running, _, reason = backend._state(name)
    finally:
        subprocess.run(["podman", "rm", "--force", name], capture_output=True)
    assert not running
    assert reason.endswith(f"exited with code 1; its log: {said}")


def test_the_port_cannot_move_and_is_freed_by_delete(
    backend: PodmanEndpointBackend, iris: IrisModel
) -> None:
    first = backend.deploy(config("iris-v1", iris, IRIS / "src"))
    other = free_port()
    with pytest.raises(EndpointError, match=r"cannot move it to port .*delete the endpoint"):
        backend.deploy(config("iris-v2", iris, IRIS / "src", port=other))
    assert backend.describe("iris").url == first.url
    backend.delete("iris")
    port = int(str(first.url).rsplit(":", 1)[1])
    with socket.socket() as sock:  # nothing holds it any more
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_a_tampered_model_archive_keeps_the_container_out_of_service(
    backend: PodmanEndpointBackend, iris: IrisModel, tmp_path: Path
) -> None:
    """The container checks model.tar.gz against MLCICD_MODEL_SHA256 itself, as on SageMaker."""
    good = backend.deploy(config("iris-v1", iris, IRIS / "src"))
    archive = tmp_path / "endpoints" / "iris" / "models" / iris.sha256 / "model.tar.gz"
    assert archive.is_file()
    archive.write_bytes(archive.read_bytes() + b"\0" * 1024)  # what a writer of the store could do
    with pytest.raises(
        EndpointError,
        match=rf"{backend.container_name('iris', 2)} exited .*refusing to serve the model",
    ):
        backend.deploy(config("iris-v2", iris, IRIS / "src"))
    now = backend.describe("iris")
    assert (now.status, now.config_name, now.url) == ("InService", "iris-v1", good.url)
    assert invoke(str(good.url)).status == 200


def test_neither_podman_nor_the_container_gets_a_secret_of_mlcicd(
    backend: PodmanEndpointBackend, iris: IrisModel, podman_environments: Path
) -> None:
    backend.deploy(config("iris-v1", iris, IRIS / "src", GREETING="configured"))
    env = container_env(backend.container_name("iris", 1))
    assert env["GREETING"] == "configured"  # what the variant configures reaches it
    assert not set(SECRETS) & set(env)
    assert env["MLCICD_MODEL_SHA256"] == iris.sha256
    backend.delete("iris")
    assert_no_secret_in(podman_environments)


def container_env(name: str) -> dict[str, str]:
    out = subprocess.run(
        ["podman", "container", "inspect", "--format", "{{json .Config.Env}}", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(item.split("=", 1) for item in json.loads(out))
