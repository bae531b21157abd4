"""`serve` as SageMaker runs it, configured by the environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.serving.container import config_from_env
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import NO_HANDLERS, free_port, request, write_code


def test_config_from_env_defaults(tmp_path: Path) -> None:
    (tmp_path / "model" / "code").mkdir(parents=True)
    config = config_from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    variant = config.variants[0]
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert variant.model_dir == str(tmp_path / "model")
    assert variant.code_dir == str(tmp_path / "model" / "code")  # the SDK's repacked layout
    assert variant.entry_point == "inference.py"
    assert config.workers == (os.cpu_count() or 1)
    assert config.max_payload_bytes == 6 * 1024 * 1024


def test_a_big_instance_serves_with_as_many_workers_as_an_endpoint_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 96)  # ml.c5.24xlarge
    assert config_from_env({"SM_MODEL_DIR": "/m", "SAGEMAKER_SUBMIT_DIRECTORY": "/c"}).workers == 32


def test_config_from_env_overrides() -> None:
    config = config_from_env(
        {
            "SAGEMAKER_BIND_TO_PORT": "9090",
            "SM_MODEL_DIR": "/m",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/c",
            "SAGEMAKER_PROGRAM": "serve.py",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        }
    )
    variant = config.variants[0]
    assert (config.port, config.workers, config.max_payload_bytes) == (9090, 3, 1024 * 1024)
    assert (variant.model_dir, variant.code_dir, variant.entry_point) == ("/m", "/c", "serve.py")


@pytest.mark.integration
def test_serve(tmp_path: Path, iris: IrisModel, processes: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SM_MODEL_DIR": str(iris.model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_SUBMIT_DIRECTORY": str(write_code(tmp_path / "code", NO_HANDLERS)),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "MLCICD_SERVE_DIR": str(tmp_path / "serve"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcicd.serving.container", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(proc)
    status_file = tmp_path / "serve" / "status.json"
    wait_for(
        "the endpoint InService",
        lambda: (
            status_file.is_file() and json.loads(status_file.read_text())["status"] == "InService"
        ),
    )
    url = f"http://127.0.0.1:{port}"
    assert request(url, "GET", "/ping").status == 200
    response = request(url, body="5.1,3.5,1.4,0.2", headers={"Content-Type": "text/csv"})
    assert response.json() == iris.model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def _serve(
    tmp_path: Path, model_dir: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full = {
        **os.environ,
        "SM_MODEL_DIR": str(model_dir),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_SUBMIT_DIRECTORY": str(write_code(tmp_path / "code", NO_HANDLERS)),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        "MLCICD_SERVE_DIR": str(tmp_path / "serve"),
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcicd.serving.container", "serve"],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, port


@pytest.mark.integration
def test_serve_loads_only_the_archive_of_its_digest(
    tmp_path: Path, iris: IrisModel, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The model dir holds nothing but model.tar.gz: what answers is the tree checked and
    extracted from it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(iris.archive, model_dir / "model.tar.gz")
    proc, port = _serve(tmp_path, model_dir, {"MLCICD_MODEL_SHA256": iris.sha256})
    processes.append(proc)
    status_file = tmp_path / "serve" / "status.json"
    wait_for(
        "the endpoint InService",
        lambda: (
            status_file.is_file() and json.loads(status_file.read_text())["status"] == "InService"
        ),
    )
    response = request(
        f"http://127.0.0.1:{port}", body="5.1,3.5,1.4,0.2", headers={"Content-Type": "text/csv"}
    )
    assert response.json() == iris.model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist()


@pytest.mark.integration
def test_serve_refuses_a_model_of_another_digest(
    tmp_path: Path, iris: IrisModel, processes: list[subprocess.Popen[bytes]]
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(iris.model_dir, model_dir)  # what SageMaker extracted: it loads, if let
    (model_dir / "model.tar.gz").write_bytes(iris.archive.read_bytes() + b"\0")
    proc, port = _serve(tmp_path, model_dir, {"MLCICD_MODEL_SHA256": iris.sha256})
    processes.append(proc)
    assert proc.wait(timeout=60) == 1
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert (
        f"refusing to serve the model: model artifact {model_dir / 'model.tar.gz'} has sha256"
        in stderr
    )
    assert not (tmp_path / "serve" / "status.json").exists()
    assert not (tmp_path / "serve" / "model").exists()
    with pytest.raises(OSError):  # nothing ever listened: /ping never answers
        request(f"http://127.0.0.1:{port}", "GET", "/ping", timeout=5)


FD3 = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execvp(sys.argv[2], sys.argv[2:])"


@pytest.mark.integration
def test_serve_takes_the_socket_handed_over_on_fd_3(
    tmp_path: Path, iris: IrisModel, processes: list[subprocess.Popen[bytes]]
) -> None:
    """LISTEN_FDS=1: serve listens where the socket was bound (not on SAGEMAKER_BIND_TO_PORT),
    and it keeps answering there after serve has stopped and another took the socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def serve(name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SM_MODEL_DIR": str(iris.model_dir),
            "SAGEMAKER_BIND_TO_PORT": str(free_port()),  # not used: the socket is
            "SAGEMAKER_SUBMIT_DIRECTORY": str(write_code(tmp_path / "code", NO_HANDLERS)),
            "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
            "MLCICD_SERVE_DIR": str(tmp_path / name),
            "LISTEN_FDS": "1",
        }
        cmd = [sys.executable, "-c", FD3, str(listener.fileno())]
        cmd += [sys.executable, "-m", "mlcicd.serving.container", "serve"]
        proc = subprocess.Popen(cmd, env=env, pass_fds=(listener.fileno(),))
        processes.append(proc)
        status = tmp_path / name / "status.json"
        wait_for(
            f"serve ({name}) InService",
            lambda: status.is_file() and json.loads(status.read_text())["status"] == "InService",
        )
        return proc

    first = serve("first")
    assert request(url, "GET", "/ping").status == 200
    second = serve("second")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    response = request(url, body="5.1,3.5,1.4,0.2", headers={"Content-Type": "text/csv"})
    assert response.json() == iris.model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist()
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    listener.close()


def test_serve_refuses_a_handover_that_is_not_a_listening_socket(tmp_path: Path) -> None:
    with open(tmp_path / "file", "w") as not_a_socket:
        cmd = [sys.executable, "-c", FD3, str(not_a_socket.fileno())]
        cmd += [sys.executable, "-m", "mlcicd.serving.container", "serve"]
        done = subprocess.run(
            cmd,
            env={**os.environ, "LISTEN_FDS": "1", "MLCICD_SERVE_DIR": str(tmp_path / "serve")},
            pass_fds=(not_a_socket.fileno(),),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "serve: cannot serve the socket handed over: LISTEN_FDS=1 but fd 3 is not a socket" in (
        done.stderr
    )
