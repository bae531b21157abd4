"""Endpoints served from the project's image (``deploy.backend: container``): the image run
with ``serve`` by podman, as SageMaker hosting runs it.

    <root>/<endpoint_name>/
        endpoint.json          what serves now: container, port, config, model, image id,
                               and how (``serving``: code, environment, workers, timeouts)
        listener.json          the process that holds the endpoint's socket (listener.py)
        models/<sha256>/       each model.tar.gz, as registered (mounted read-only)
        code/<container>/      the inference code its deploy copied (mounted read-only)
        serve/<container>/     the server's status.json and metrics/ (MLCICD_SERVE_DIR inside)

Each config runs in a container of its own (``mlcicd-ep-<endpoint>-<root>-<generation>``,
``<root>`` a digest of the endpoints directory: podman's names are the machine's, and two
projects may both have an endpoint ``iris``):
``/opt/ml/model`` holds the model.tar.gz and ``MLCICD_MODEL_SHA256`` its registered digest,
so the container's ``serve`` checks the archive and extracts it itself before ``model_fn``
(:mod:`mlcicd.serving.model_check`) — as it does on SageMaker, where nothing on the host can
check for it. ``/opt/ml/code`` holds the inference code (read-only) and the ``SAGEMAKER_*``
serving environment says the rest. The container gets no AWS credentials nor mlcicd's
secrets: its environment is the serving one and what the variant configures.

The address is one listening socket on ``127.0.0.1``, bound once by the endpoint's listener
(:mod:`mlcicd.endpoints.listener`) and handed to each container as fd 3 (``LISTEN_FDS``):
the URL stays the same for the endpoint's life. An update starts the new container on that
socket, waits until its server says InService (its status.json), records it, then stops the
old one with SIGTERM: the old server stops accepting and finishes the requests it has
(drain), while the new one accepts from the same kernel queue — no request is refused or
lost, as with local endpoints. A new container that exits first, or is not InService within
``deploy.startup_timeout``, fails the update with its last log lines and leaves the old one
serving, on the same address.

A container that dies is served again by :meth:`PodmanEndpointBackend.restart` (``mlcicd
up``'s endpoint watch calls it, as for a local endpoint): a new generation from what
endpoint.json recorded — no deploy config needed — on the same socket, so the same URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.endpoints import listener
from mlcicd.endpoints.base import (
    FAILED,
    IN_SERVICE,
    EndpointConfig,
    EndpointDescription,
    ProductionVariant,
    check_name,
)
from mlcicd.endpoints.podman_config import copy_code, recorded, remove_code, serving_record
from mlcicd.errors import EndpointError, NotFoundError
from mlcicd.fsutil import atomic_write_json, locked, read_object
from mlcicd.images.podman import (
    image_id,
    log_tail,
    missing_entry,
    podman,
    podman_binary,
    remove_container,
    root_id,
    tail,
)
from mlcicd.process import child_environment
from mlcicd.serving import metrics
from mlcicd.serving.layout import STATUS_FILE
from mlcicd.serving.model_check import ARCHIVE_NAME, MODEL_SHA256_ENV
from mlcicd.shapes import NAME_RE, EndpointMetrics

RECORD_FILE = "endpoint.json"
LOCK_FILE = ".lock"  # one deploy or delete of an endpoint at a time, across processes
SERVE_DIR_IN_CONTAINER = "/var/run/mlcicd-serve"
PING_INTERVAL = 0.2
LOG_LINES = 15
EXIT_LOG_WAIT = 3.0


# Run as ``python -c _FD3 FD podman run …``: podman passes fds 3.. (--preserve-fds), so the
# socket must be fd 3 in podman's process, whatever number it has here.
_FD3 = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.execvp(sys.argv[2], sys.argv[2:])"


class PodmanEndpointBackend:
    """Endpoints under ``root``, each served by a container of ``image``."""

    TYPE: ClassVar[str] = "container"

    def __init__(self, root: Path, image: str | None = None, *, drain_seconds: int = 30) -> None:
        self.root = Path(root).resolve()
        self.image = image
        self.drain_seconds = drain_seconds
        self.root_id = root_id(self.root)

    def container_name(self, endpoint: str, generation: int) -> str:
        return f"mlcicd-ep-{endpoint}-{self.root_id}-{generation}"

    def endpoint_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    # -- the interface --------------------------------------------------------------------

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        edir = self.endpoint_dir(config.endpoint_name)  # before podman is asked anything
        check_name(config.name, "endpoint config name")
        if (
            len(config.variants) != 1
            or config.shadow is not None
            or config.data_capture is not None
            or config.explainer is not None
        ):
            raise EndpointError(
                f"endpoint {config.endpoint_name}: a container serves one model, without shadow, "
                "capture or explanations",
                hint="use deploy.backend: local for variants, shadows, data capture and "
                "explain.online",
            )
        if self.image is None:
            raise EndpointError(
                f"endpoint {config.endpoint_name}: no image to serve from",
                hint="set build.image: true, or deploy.backend: container builds it in the run",
            )
        podman_binary(EndpointError)
        built = image_id(self.image, error=EndpointError)
        edir.mkdir(parents=True, exist_ok=True)
        with locked(edir / LOCK_FILE):
            record = read_object(edir / RECORD_FILE) or {}
            old = str(record.get("container") or "") or None
            old_running = old is not None and self._state(old)[0]
            generation = int(record.get("generation") or 0) + 1
            name = self.container_name(config.endpoint_name, generation)
            port, started_listener = self._address(edir, config, old if old_running else None)
            if started_listener and old_running and config.port is not None:
                old_running = False  # _address stopped it: it held the port alone
            model_dir = self._model(edir, config.variants[0])
            # The container mounts a copy: a restart must find the code the run deployed,
            # after the run's own checkout is pruned.
            variant = replace(config.variants[0], code_dir=copy_code(config, edir / "code" / name))
            try:
                self._serve(edir, name, built, model_dir, variant, config)
            except BaseException as exc:
                remove_container(name)
                shutil.rmtree(variant.code_dir, ignore_errors=True)
                if started_listener and not old_running:
                    listener.stop(edir)  # nothing serves it: free the port
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
                "serving": serving_record(variant, config),
            }
            atomic_write_json(edir / RECORD_FILE, new_record)
            if old and old != name:
                self._stop(old)
                shutil.rmtree(edir / "serve" / old, ignore_errors=True)
            remove_code(edir, record, keep=variant.code_dir)
            return self.describe(config.endpoint_name)

    def restart(self, name: str) -> EndpointDescription:
        """Serve endpoint ``name`` again after its container died (killed, out of memory, a
        reboot): a new container generation of the recorded image, model, code and serving
        settings (endpoint.json's ``serving``), on the listener's socket — the same address.
        A listener that died too is started again on the recorded port. A no-op while the
        endpoint's container runs.

        ``EndpointError`` with the new container's last log lines when it does not serve;
        a new container that died is kept instead of the old one, for ``describe`` to show
        its log.
        """
        edir = self.endpoint_dir(name)
        if not (edir / RECORD_FILE).is_file():
            raise NotFoundError(f"endpoint {name} does not exist", hint="deploy it first")
        with locked(edir / LOCK_FILE):
            record = read_object(edir / RECORD_FILE) or {}
            old = str(record.get("container") or "")
            if old and self._state(old)[0]:
                return self.describe(name)
            variant, config = recorded(name, record, edir)
            if listener.running(edir) is None:
                listener.start(edir, int(record["port"]))  # kept until the endpoint is deleted
            generation = int(record.get("generation") or 0) + 1
            new = self.container_name(name, generation)
            model_dir = edir / "models" / variant.model_sha256
            try:
                self._serve(edir, new, str(record["image_id"]), model_dir, variant, config)
            except BaseException:
                running, _, reason = self._state(new)
                if running or not reason.startswith(f"container {new} exited"):
                    remove_container(new)
                    shutil.rmtree(edir / "serve" / new, ignore_errors=True)
                    raise
                # It died too: it becomes the one describe reports, with its own log.
                self._replace(edir, record, old, new, generation)
                raise
            self._replace(edir, record, old, new, generation)
            return self.describe(name)

    def _replace(
        self, edir: Path, record: dict[str, Any], old: str, new: str, generation: int
    ) -> None:
        """Record container ``new`` as the endpoint's, and remove the dead ``old``."""
        atomic_write_json(
            edir / RECORD_FILE, {**record, "container": new, "generation": generation}
        )
        if old:
            remove_container(old)
            shutil.rmtree(edir / "serve" / old, ignore_errors=True)

    def _address(self, edir: Path, config: EndpointConfig, old: str | None) -> tuple[int, bool]:
        """The endpoint's port, and whether its listener was started now.

        The listener, once running, keeps the port for the endpoint's life: an update
        cannot move it. Without one (a new endpoint, a listener that was killed, or an
        endpoint deployed before listeners) it is started; if the running container
        ``old`` then holds the wanted port itself, it is stopped (drained) first.
        """
        held = listener.running(edir)
        if held is not None:
            if config.port is not None and config.port != held["port"]:
                raise EndpointError(
                    f"endpoint {config.endpoint_name} listens on 127.0.0.1:{held['port']}; "
                    f"an update cannot move it to port {config.port}",
                    hint="delete the endpoint and deploy it again to change deploy.port",
                )
            return held["port"], False
        if old is not None and config.port is not None:
            self._stop(old)  # it publishes the port itself: the one gap left, said in the docs
        return listener.start(edir, config.port), True

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
            if NAME_RE.match(d.name) and (d / RECORD_FILE).is_file()  # as the local backend
        ]

    def delete(self, name: str) -> None:
        edir = self.endpoint_dir(name)
        if not (edir / RECORD_FILE).is_file():
            raise NotFoundError(f"endpoint {name} does not exist")
        with locked(edir / LOCK_FILE):
            record = read_object(edir / RECORD_FILE) or {}
            if record.get("container"):
                self._stop(str(record["container"]))
            listener.stop(edir)
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
        return metrics.endpoint_metrics(name, mdir, window)

    # -- the container --------------------------------------------------------------------

    def _serve(
        self,
        edir: Path,
        name: str,
        image: str,
        model_dir: Path,
        variant: ProductionVariant,
        config: EndpointConfig,
    ) -> None:
        """Start container ``name`` on the endpoint's socket; wait until it is InService."""
        listen_fd = listener.socket_fd(edir)
        try:
            self._start(edir, name, listen_fd, image, model_dir, variant, config)
        finally:
            os.close(listen_fd)
        self._wait_in_service(edir / "serve" / name, name, config.startup_timeout, image)

    def _model(self, edir: Path, variant: ProductionVariant) -> Path:
        """A directory holding the variant's model.tar.gz, copied as it is: the container
        checks it against ``MLCICD_MODEL_SHA256`` and extracts it itself."""
        model_dir = edir / "models" / variant.model_sha256
        archive = model_dir / ARCHIVE_NAME
        if not archive.is_file():
            model_dir.mkdir(parents=True, exist_ok=True)
            partial = model_dir / f".{ARCHIVE_NAME}.partial"
            try:
                shutil.copyfile(variant.model_data, partial)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise EndpointError(
                    f"cannot copy the model {variant.model_data} for the container: {exc}"
                ) from exc
            partial.replace(archive)
        return model_dir

    def _start(
        self,
        edir: Path,
        name: str,
        listen_fd: int,
        image: str,
        model_dir: Path,
        variant: ProductionVariant,
        config: EndpointConfig,
    ) -> None:
        """``podman run --detach`` with the endpoint's socket as the container's fd 3."""
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
            MODEL_SHA256_ENV: variant.model_sha256,
            "MLCICD_SERVE_DIR": SERVE_DIR_IN_CONTAINER,
            "LISTEN_FDS": "1",
        }
        what = f"starting container {name} for endpoint {config.endpoint_name}"
        cmd = [
            sys.executable,
            "-c",
            _FD3,
            str(listen_fd),
            podman_binary(EndpointError),
            "run",
            "--detach",
            "--name",
            name,
            "--preserve-fds",
            "1",
            "--label",
            f"io.mlcicd.endpoint={config.endpoint_name}",
            "--volume",
            f"{model_dir.resolve()}:/opt/ml/model:ro",
            "--volume",
            f"{variant.code_dir.resolve()}:/opt/ml/code:ro",
            "--volume",
            f"{serve_dir.resolve()}:{SERVE_DIR_IN_CONTAINER}",
            # NAME alone: podman takes the value from its own environment (not on its command line).
            *[arg for key in sorted(env) for arg in ("--env", key)],
            image,
            "serve",
        ]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
                pass_fds=(listen_fd,),
                env={**child_environment(), **env},  # podman's own: no secrets of ours
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EndpointError(f"{what}: {exc}") from exc
        finally:
            # podman (runc) made the shared socket blocking; the old container's workers
            # need it non-blocking (listener.py bounds the meantime).
            os.set_blocking(listen_fd, False)
        if done.returncode != 0:
            said = tail(done.stderr or done.stdout, 8)
            raise EndpointError(
                missing_entry(self.image or image, "serve", said) or f"{what}: {said}"
            )

    def _wait_in_service(self, serve_dir: Path, name: str, timeout: float, image: str) -> None:
        """Until the container's own server says InService: ``/ping`` on the endpoint's
        address cannot tell, the old container answers it too during an update."""
        deadline = time.monotonic() + timeout
        while True:
            status = read_object(serve_dir / STATUS_FILE) or {}
            if status.get("status") == IN_SERVICE:
                return
            running, _, reason = self._state(name)
            if not running:
                raise EndpointError(
                    missing_entry(self.image or image, "serve", reason)
                    or f"container {name} exited before it served: {reason}"
                )
            if time.monotonic() >= deadline:
                raise EndpointError(
                    f"container {name} was not InService within {timeout:g}s; "
                    f"its log: {self._logs(name)}",
                    hint="raise deploy.startup_timeout if model_fn is slow; an image's serve "
                    "must serve the socket on fd 3 (LISTEN_FDS), as mlcicd's does",
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
        return (
            False,
            None,
            f"container {name} exited with code {code}; its log: {self._logs(name, exited=True)}",
        )

    def _logs(self, name: str, *, exited: bool = False) -> str:
        """The log's last lines. conmon may still be copying an exited container's last output
        into the log when podman already reports the exit (containers/podman#10675): for an
        exited container an empty log is read again for up to EXIT_LOG_WAIT seconds, so the
        reason it gives (a refused model, a traceback) reaches the user."""
        deadline = time.monotonic() + (EXIT_LOG_WAIT if exited else 0.0)
        while True:
            said = log_tail(name, LOG_LINES, error=EndpointError)
            if said or time.monotonic() >= deadline:
                return said or "(empty)"
            time.sleep(PING_INTERVAL)

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
