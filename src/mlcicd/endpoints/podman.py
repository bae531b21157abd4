"""Endpoints served from the project's image (``deploy.backend: container``): the image run
with ``serve`` by podman, as SageMaker hosting runs it.

    <root>/<endpoint_name>/
        endpoint.json          what serves now: container, port, config, model, image id
        models/<sha256>/       each model.tar.gz, digest-checked and extracted once
        serve/<container>/     the server's status.json and metrics/ (MLCICD_SERVE_DIR inside)

Each config runs in a container of its own (``mlcicd-ep-<endpoint>-<generation>``):
``/opt/ml/model`` holds the extracted model (read-only), ``/opt/ml/code`` the inference
code (read-only), the ``SAGEMAKER_*`` serving environment says the rest, and port 8080 is
published on ``127.0.0.1`` only. The endpoint is InService once ``GET /ping`` answers 200; a
container that exits first fails the deploy with its last log lines.

An update starts the new container on a new port, waits for its ``/ping``, records it as
the one serving (``describe`` gives its URL), then stops the old one with SIGTERM: the old
server stops accepting and finishes the requests it has (drain), so no request it accepted
is lost — but the URL changes: clients must take it from ``describe`` (``mlcicd invoke``
does). With ``deploy.port`` fixed the port cannot be shared, so the old container is
stopped (drained) first: requests in that gap are refused, never half-answered. A failed
update leaves the old container serving.
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.archive import safe_extract
from mlcicd.endpoints.base import (
    FAILED,
    IN_SERVICE,
    EndpointConfig,
    EndpointDescription,
    EndpointMetrics,
    ProductionVariant,
)
from mlcicd.endpoints.local import _locked  # one deploy or delete of an endpoint at a time
from mlcicd.endpoints.local_process import read_object
from mlcicd.errors import EndpointError, NotFoundError
from mlcicd.fsutil import atomic_write_json
from mlcicd.images.podman import (
    image_id,
    missing_entry,
    podman,
    podman_binary,
    remove_container,
    tail,
)
from mlcicd.serving import metrics

RECORD_FILE = "endpoint.json"
SERVE_DIR_IN_CONTAINER = "/var/run/mlcicd-serve"
PING_INTERVAL = 0.2
LOG_LINES = 15


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinged(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class PodmanEndpointBackend:
    """Endpoints under ``root``, each served by a container of ``image``."""

    TYPE: ClassVar[str] = "container"

    def __init__(self, root: Path, image: str | None = None, *, drain_seconds: int = 30) -> None:
        self.root = Path(root).resolve()
        self.image = image
        self.drain_seconds = drain_seconds

    def endpoint_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise EndpointError(f"endpoint name {name!r} is not valid")
        return self.root / name

    # -- the interface --------------------------------------------------------------------

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        if (
            len(config.variants) != 1
            or config.shadow is not None
            or config.data_capture is not None
        ):
            raise EndpointError(
                f"endpoint {config.endpoint_name}: a container serves one model, without shadow "
                "or capture",
                hint="use deploy.backend: local for variants, shadows and data capture",
            )
        if self.image is None:
            raise EndpointError(
                f"endpoint {config.endpoint_name}: no image to serve from",
                hint="set build.image: true, or deploy.backend: container builds it in the run",
            )
        podman_binary(EndpointError)
        built = image_id(self.image, error=EndpointError)
        edir = self.endpoint_dir(config.endpoint_name)
        edir.mkdir(parents=True, exist_ok=True)
        with _locked(edir):
            record = read_object(edir / RECORD_FILE) or {}
            old = record.get("container") if record else None
            old_running = bool(old) and self._state(str(old))[0]
            generation = int(record.get("generation") or 0) + 1
            name = f"mlcicd-ep-{config.endpoint_name}-{generation}"
            port = config.port or _free_port()
            if old_running and config.port is not None and record.get("port") == config.port:
                self._stop(str(old))  # the port cannot be shared: drain the old one first
                old_running = False
            variant = config.variants[0]
            model_dir = self._model(edir, variant)
            try:
                self._start(edir, name, port, built, model_dir, variant, config)
                self._wait_in_service(name, port, config.startup_timeout)
            except BaseException as exc:
                remove_container(name)
                if record:
                    record["last_update_failure"] = getattr(exc, "headline", None) or repr(exc)
                    atomic_write_json(edir / RECORD_FILE, record)
                raise
            now = time.time()
            new_record: dict[str, Any] = {
                "name": config.endpoint_name,
                "backend": self.TYPE,
                "created_at": record.get("created_at") or now,
                "updated_at": now,
                "config_name": config.name,
                "model_sha256": variant.model_sha256,
                "variant": variant.name,
                "image": self.image,
                "image_id": built,
                "container": name,
                "port": port,
                "generation": generation,
                "last_update_failure": None,
            }
            atomic_write_json(edir / RECORD_FILE, new_record)
            if old and old != name:
                self._stop(str(old))
                shutil.rmtree(edir / "serve" / str(old), ignore_errors=True)
            return self.describe(config.endpoint_name)

    def describe(self, name: str) -> EndpointDescription:
        edir = self.endpoint_dir(name)
        record = read_object(edir / RECORD_FILE) if edir.is_dir() else None
        if not record:
            raise NotFoundError(f"endpoint {name} does not exist", hint="deploy it first")
        container = str(record.get("container"))
        running, pid, reason = self._state(container)
        port = record.get("port")
        return EndpointDescription(
            name=name,
            status=IN_SERVICE if running else FAILED,
            url=f"http://127.0.0.1:{port}" if running else None,
            port=port if running else None,
            pid=pid,
            config_name=record.get("config_name"),
            model_sha256=record.get("model_sha256"),
            failure_reason=None if running else reason,
            last_update_failure=record.get("last_update_failure"),
            created_at=record.get("created_at"),
            updated_at=record.get("updated_at"),
            generation=record.get("generation"),
            variants=[
                {
                    "name": record.get("variant"),
                    "weight": 1.0,
                    "model_sha256": record.get("model_sha256"),
                }
            ],
        )

    def list(self) -> list[EndpointDescription]:
        if not self.root.is_dir():
            return []
        return [
            self.describe(d.name)
            for d in sorted(self.root.iterdir())
            if (d / RECORD_FILE).is_file()
        ]

    def delete(self, name: str) -> None:
        edir = self.endpoint_dir(name)
        if not (edir / RECORD_FILE).is_file():
            raise NotFoundError(f"endpoint {name} does not exist")
        with _locked(edir):
            record = read_object(edir / RECORD_FILE) or {}
            if record.get("container"):
                self._stop(str(record["container"]))
        shutil.rmtree(edir, ignore_errors=True)

    def set_weights(self, name: str, weights: dict[str, float]) -> EndpointDescription:
        raise EndpointError(
            f"endpoint {name} is served by one container: it has no weights to set",
            hint="use deploy.backend: local for variants and weights",
        )

    def metrics(self, name: str, window: float | None = None) -> EndpointMetrics:
        """The serving container's own metrics files, as the local backend reads them."""
        record = read_object(self.endpoint_dir(name) / RECORD_FILE)
        if not record:
            raise NotFoundError(f"endpoint {name} does not exist")
        mdir = (
            self.endpoint_dir(name) / "serve" / str(record.get("container")) / metrics.METRICS_DIR
        )
        summed = metrics.window(mdir, window) if window else metrics.read_all(mdir)
        return {
            "endpoint": name,
            "window_seconds": window,
            "variants": {
                v: metrics.summary(c) for v, c in sorted(metrics.by_variant(summed).items())
            },
            "counters": summed.get("counters", {}),
            "notes": [],
        }

    # -- the container --------------------------------------------------------------------

    def _model(self, edir: Path, variant: ProductionVariant) -> Path:
        model_dir = edir / "models" / variant.model_sha256
        if not model_dir.is_dir():  # extraction is all-or-nothing: a present dir is complete
            safe_extract(variant.model_data, model_dir, expected_sha256=variant.model_sha256)
        return model_dir

    def _start(
        self,
        edir: Path,
        name: str,
        port: int,
        image: str,
        model_dir: Path,
        variant: ProductionVariant,
        config: EndpointConfig,
    ) -> None:
        serve_dir = edir / "serve" / name
        serve_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **variant.environment,
            # SageMaker's serving environment (the image's serve reads it).
            "SAGEMAKER_PROGRAM": variant.entry_point,
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code",
            "SAGEMAKER_BIND_TO_PORT": "8080",
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(config.workers),
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": f"{config.max_payload_bytes / 1024 / 1024:g}",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": f"{config.startup_timeout:g}",
            "SAGEMAKER_VARIANT_NAME": variant.name,
            "MLCICD_SERVE_DIR": SERVE_DIR_IN_CONTAINER,
        }
        what = f"starting container {name} for endpoint {config.endpoint_name}"
        done = podman(
            [
                "run",
                "--detach",
                "--name",
                name,
                "--publish",
                f"127.0.0.1:{port}:8080",
                "--label",
                f"io.mlcicd.endpoint={config.endpoint_name}",
                "--volume",
                f"{model_dir.resolve()}:/opt/ml/model:ro",
                "--volume",
                f"{variant.code_dir.resolve()}:/opt/ml/code:ro",
                "--volume",
                f"{serve_dir.resolve()}:{SERVE_DIR_IN_CONTAINER}",
                *[arg for key in sorted(env) for arg in ("--env", f"{key}={env[key]}")],
                image,
                "serve",
            ],
            error=EndpointError,
            what=what,
            check=False,
        )
        if done.returncode != 0:
            said = tail(done.stderr or done.stdout, 8)
            raise EndpointError(missing_entry(str(self.image), "serve", said) or f"{what}: {said}")

    def _wait_in_service(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if _pinged(port):
                return
            running, _, reason = self._state(name)
            if not running:
                raise EndpointError(
                    missing_entry(str(self.image), "serve", reason)
                    or f"container {name} exited before answering /ping: {reason}"
                )
            if time.monotonic() >= deadline:
                raise EndpointError(
                    f"container {name} did not answer /ping on 127.0.0.1:{port} within "
                    f"{timeout:g}s; "
                    f"its log: {self._logs(name)}",
                    hint="raise deploy.startup_timeout if model_fn is slow",
                )
            time.sleep(PING_INTERVAL)

    def _state(self, name: str) -> tuple[bool, int | None, str]:
        """(running, pid, why not running)."""
        done = podman(
            [
                "container",
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
                name,
            ],
            error=EndpointError,
            what=f"inspecting container {name}",
            check=False,
        )
        if done.returncode != 0:
            return False, None, f"container {name} is gone (removed outside mlcicd?)"
        running, pid, code = [*done.stdout.split(), "", "", ""][:3]
        if running == "true":
            return True, int(pid) if pid.isdigit() else None, ""
        return False, None, f"container {name} exited with code {code}; its log: {self._logs(name)}"

    def _logs(self, name: str) -> str:
        done = podman(
            ["logs", "--tail", str(LOG_LINES), name],
            error=EndpointError,
            what="reading logs",
            check=False,
        )
        return tail(done.stdout + done.stderr, LOG_LINES) or "(empty)"

    def _stop(self, name: str) -> None:
        """SIGTERM (the server drains), SIGKILL after the drain time; then remove it."""
        podman(
            ["stop", "--time", str(self.drain_seconds), name],
            error=EndpointError,
            what=f"stopping container {name}",
            check=False,
            timeout=self.drain_seconds + 60,
        )
        remove_container(name)
