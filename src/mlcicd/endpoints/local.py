"""Endpoints on this machine: one detached supervisor process per endpoint.

    <root>/<endpoint_name>/
        endpoint.json        name, backend, created_at (written once)
        config.json          the serving config to run (read by the supervisor at start, SIGHUP)
        status.json          written only by the supervisor, atomically
        weights.json         traffic weights set by ``set_weights`` (the workers poll it)
        traffic.json         the new config's share during a canary/linear update (supervisor)
        metrics/             each worker's counts, retired workers' sum, series.jsonl
        data-capture/        captured requests/responses and shadow comparisons (default place)
        supervisor.pid       {"pid", "start_time"} of the supervisor, from its launcher
        models/<sha256>/     each model.tar.gz, digest-checked and extracted once
        code/<config_name>/  a copy of the inference code (per variant if their code differs)
        run/                 per-generation worker specs; the workers' working directory
        logs/endpoint.log    supervisor and workers, one line per event

A live supervisor of another mlcicd version (or serving layout) than this one is replaced,
not updated: its workers would be this version's code, which it may not be able to start
(:mod:`mlcicd.serving.handover`: the new supervisor takes its socket and serves the new
config; the old one serves until then, so the upgrade loses no request).

``deploy`` with no live supervisor starts one (``--detach``: it outlives this process) and
waits for InService or Failed; with a live one it rewrites config.json, sends SIGHUP and
waits until the status shows that config's digest (or an update failure for it, in which
case config.json is restored: the old generation never stopped serving). Liveness is
"the recorded pid runs and started when recorded" (:mod:`mlcicd.procinfo`).

What goes into config.json, models/ and code/ is built by :mod:`mlcicd.endpoints.local_config`;
starting, watching and stopping the processes is :mod:`mlcicd.endpoints.local_process`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from mlcicd import __version__, procinfo
from mlcicd.endpoints.base import (
    CREATING,
    FAILED,
    IN_SERVICE,
    OUT_OF_SERVICE,
    UPDATING,
    EndpointConfig,
    EndpointDescription,
    check_name,
    checked_weights,
)
from mlcicd.endpoints.local_config import prune, serving_config
from mlcicd.endpoints.local_process import POLL_INTERVAL, exited, launch, live_status, stop
from mlcicd.errors import EndpointError, EndpointRollbackError, NotFoundError, PortInUseError
from mlcicd.fsutil import atomic_write_bytes, atomic_write_json, locked, sha256_bytes
from mlcicd.fsutil import read_object as _read
from mlcicd.serving import metrics
from mlcicd.serving.config import ServingConfig
from mlcicd.serving.layout import (
    CONFIG_FILE,
    LAYOUT_VERSION,
    LOG_FILE,
    PID_FILE,
    STATUS_FILE,
    WEIGHTS_FILE,
)
from mlcicd.shapes import NAME_RE, EndpointMetrics

META_FILE = "endpoint.json"
LOCK_FILE = ".lock"  # one deploy or delete of an endpoint at a time, across processes


class LocalEndpointBackend:
    """Endpoints under ``root``, each served by its own supervisor and workers."""

    TYPE: ClassVar[str] = "local"

    def __init__(
        self, root: Path, *, stop_timeout: float = 45.0, launch_timeout: float = 30.0
    ) -> None:
        self.root = Path(root).resolve()
        self.stop_timeout = stop_timeout
        self.launch_timeout = launch_timeout

    def endpoint_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def log_path(self, name: str) -> Path:
        return self.endpoint_dir(name) / LOG_FILE

    # -- the interface --------------------------------------------------------------------

    def deploy(self, config: EndpointConfig) -> EndpointDescription:
        check_name(config.name, "endpoint config name")
        edir = self.endpoint_dir(config.endpoint_name)
        edir.mkdir(parents=True, exist_ok=True)
        with locked(edir / LOCK_FILE):
            if not (edir / META_FILE).is_file():
                atomic_write_json(
                    edir / META_FILE,
                    {"name": config.endpoint_name, "backend": self.TYPE, "created_at": time.time()},
                )
            live = live_status(edir)
            serving = self._prepare(edir, config, live)
            if live is not None and not runs_this_version(live):
                return self._replace(edir, config, serving, live)
            if live is not None:
                return self._update(edir, config, serving, live)
            return self._create(edir, config, serving)

    def describe(self, name: str) -> EndpointDescription:
        edir = self.endpoint_dir(name)
        if not edir.is_dir():
            raise NotFoundError(f"endpoint {name} does not exist", hint="deploy it first")
        meta = _read(edir / META_FILE) or {}
        status = _read(edir / STATUS_FILE)
        log_path = edir / LOG_FILE
        if status is None:
            launcher = _read(edir / PID_FILE) or {}
            alive = procinfo.is_alive(launcher.get("pid"), launcher.get("start_time"))
            return EndpointDescription(
                name=name,
                status=CREATING if alive else FAILED,
                url=None,
                port=None,
                pid=launcher.get("pid") if alive else None,
                config_name=None,
                model_sha256=None,
                failure_reason=None
                if alive
                else f"the endpoint server never started; see {log_path}",
                last_update_failure=None,
                created_at=meta.get("created_at"),
                log_path=log_path,
            )
        pid = status.get("pid")
        alive = procinfo.is_alive(pid, status.get("pid_start_time"))
        state, reason = status.get("status", FAILED), status.get("failure_reason")
        if not alive:
            if state in (IN_SERVICE, UPDATING):
                state = OUT_OF_SERVICE
                reason = (
                    f"the endpoint server (pid {pid}) is no longer running: it was killed or the "
                    "machine "
                    "restarted; deploy again to restart it"
                )
            elif state == CREATING:
                state, reason = (
                    FAILED,
                    f"the endpoint server (pid {pid}) exited while starting; see {log_path}",
                )
        serving = alive and state in (IN_SERVICE, UPDATING)
        return EndpointDescription(
            name=name,
            status=state,
            url=status.get("url") if serving else None,
            port=status.get("port"),
            pid=pid if alive else None,
            config_name=status.get("config_name"),
            model_sha256=status.get("model_sha256"),
            failure_reason=reason if state in (FAILED, OUT_OF_SERVICE) else None,
            last_update_failure=status.get("last_update_failure"),
            created_at=meta.get("created_at"),
            updated_at=_epoch(status.get("updated_at")),
            generation=status.get("generation"),
            log_path=log_path,
            variants=self._variants(edir, status),
            last_rollback=status.get("last_rollback"),
            traffic=status.get("traffic") if serving else None,
            autoscaling=status.get("autoscaling") if serving else None,
        )

    def set_weights(self, name: str, weights: dict[str, float]) -> EndpointDescription:
        """New traffic weights for the serving config's variants, without a restart.

        SageMaker's ``UpdateEndpointWeightsAndCapacities``: the workers pick up
        ``weights.json`` within a fraction of a second; requests in flight are unaffected.
        """
        described = self.describe(name)
        if described.status not in (IN_SERVICE, UPDATING) or described.config_name is None:
            raise EndpointError(f"endpoint {name} is {described.status}; it has no weights to set")
        merged = checked_weights(
            name, weights, {v["name"]: v["weight"] for v in described.variants}
        )
        edir = self.endpoint_dir(name)
        with locked(edir / LOCK_FILE):
            atomic_write_json(
                edir / WEIGHTS_FILE, {"config_name": described.config_name, "weights": merged}
            )
        return self.describe(name)

    def metrics(self, name: str, window: float | None = None) -> EndpointMetrics:
        """Per variant: counts, 5XX rate, p50/p90/p99 latencies (ms) — over ``window`` seconds
        or since the endpoint started (its own files: up to date within seconds)."""
        edir = self.endpoint_dir(name)
        if not edir.is_dir():
            raise NotFoundError(f"endpoint {name} does not exist")
        return metrics.endpoint_metrics(name, edir / metrics.METRICS_DIR, window)

    def _variants(self, edir: Path, status: dict[str, Any]) -> list[dict[str, Any]]:
        variants = [dict(v) for v in status.get("variants", []) if isinstance(v, dict)]
        override = _read(edir / WEIGHTS_FILE) or {}
        if override.get("config_name") == status.get("config_name"):
            for variant in variants:
                weight = (override.get("weights") or {}).get(variant.get("name"))
                if isinstance(weight, int | float):
                    variant["weight"] = weight
        return variants

    def list(self) -> list[EndpointDescription]:
        if not self.root.is_dir():
            return []
        found = []
        for edir in sorted(self.root.iterdir()):
            if edir.is_dir() and NAME_RE.match(edir.name) and (edir / META_FILE).is_file():
                with contextlib.suppress(NotFoundError):
                    found.append(self.describe(edir.name))
        return found

    def delete(self, name: str) -> None:
        edir = self.endpoint_dir(name)
        if not edir.is_dir():
            raise NotFoundError(f"endpoint {name} does not exist")
        with locked(edir / LOCK_FILE):
            stop(edir, self.stop_timeout)
            shutil.rmtree(edir, ignore_errors=True)

    def restart(self, name: str) -> EndpointDescription:
        """Start endpoint ``name`` again on its own recorded ``config.json``, exactly as it was
        (variants, shadow, capture, deployment policy, workers, timeouts); a no-op if its
        supervisor is alive. When config.json leaves the port to the system (0), the port the
        endpoint last listened on is tried first, so its URL survives a restart when it can.
        """
        edir = self.endpoint_dir(name)
        if not (edir / META_FILE).is_file():
            raise NotFoundError(f"endpoint {name} does not exist", hint="deploy it first")
        with locked(edir / LOCK_FILE):
            if live_status(edir) is not None:
                return self.describe(name)
            config_path = edir / CONFIG_FILE
            try:
                recorded = config_path.read_bytes()
                serving = ServingConfig.from_dict(json.loads(recorded), str(config_path))
            except (OSError, ValueError) as exc:
                raise EndpointError(
                    f"endpoint {name} has no usable {CONFIG_FILE}: {exc}", hint="deploy it again"
                ) from exc
            last_port = (_read(edir / STATUS_FILE) or {}).get("port")
            if serving.port == 0 and isinstance(last_port, int) and last_port > 0:
                again = ServingConfig.from_dict({**serving.to_dict(), "port": last_port})
                atomic_write_json(config_path, again.to_dict())
                try:
                    return self._launch(edir, name, again)
                except PortInUseError:
                    atomic_write_bytes(config_path, recorded)
            return self._launch(edir, name, serving)

    # -- deploy ---------------------------------------------------------------------------

    def _prepare(
        self, edir: Path, config: EndpointConfig, live: dict[str, Any] | None
    ) -> ServingConfig:
        """The serving config of ``config``, its models and code ready in ``edir``."""
        port = config.port or 0
        if live is not None and config.port in (None, live.get("port")):
            # Keep the port as the running config.json states it (0 or a number), so that
            # redeploying the same config is recognised as the same (same digest).
            port = int((_read(edir / CONFIG_FILE) or {}).get("port") or 0)
        in_use = live is not None and live.get("config_name") == config.name
        return serving_config(edir, config, port=port, in_use=in_use)

    def _create(
        self, edir: Path, config: EndpointConfig, serving: ServingConfig
    ) -> EndpointDescription:
        atomic_write_json(edir / CONFIG_FILE, serving.to_dict())
        return self._launch(edir, config.endpoint_name, serving)

    def _launch(self, edir: Path, name: str, serving: ServingConfig) -> EndpointDescription:
        """Start a supervisor on the config.json in ``edir``; wait for InService or Failed."""
        launch(
            edir, name, serving, launch_timeout=self.launch_timeout, stop_timeout=self.stop_timeout
        )
        return self.describe(name)

    def _replace(
        self, edir: Path, config: EndpointConfig, serving: ServingConfig, live: dict[str, Any]
    ) -> EndpointDescription:
        """Serve ``config`` from a supervisor of this version, which takes the listening socket
        over from the running one (of another version) and replaces it once ready."""
        name = config.endpoint_name
        theirs, ours = served_by(live), f"mlcicd {__version__} (serving layout {LAYOUT_VERSION})"
        if not isinstance(live.get("layout_version"), int):  # older than the handover
            raise EndpointError(
                f"endpoint {name} is served by {theirs}, which cannot start the workers of this "
                f"{ours} nor hand its socket over",
                hint=f"restart it on this version: mlcicd endpoints delete {name}, then deploy "
                "again (it does not serve in between)",
            )
        log_path = edir / LOG_FILE
        config_path, pid_path = edir / CONFIG_FILE, edir / PID_FILE
        previous = config_path.read_bytes() if config_path.is_file() else None
        launcher = pid_path.read_bytes() if pid_path.is_file() else None
        atomic_write_json(config_path, serving.to_dict())
        try:
            launch(
                edir,
                name,
                serving,
                launch_timeout=self.launch_timeout,
                stop_timeout=self.stop_timeout,
                take_over=True,
            )
        except EndpointError as exc:
            _restore(config_path, previous)
            _restore(pid_path, launcher)
            raise EndpointError(
                f"endpoint {name} still runs on {theirs}: its replacement by this {ours} "
                f"failed: {exc.message}",
                hint=exc.hint or f"see {log_path}",
            ) from exc
        prune(edir, serving, previous)
        return self.describe(name)

    def _update(
        self, edir: Path, config: EndpointConfig, serving: ServingConfig, live: dict[str, Any]
    ) -> EndpointDescription:
        name = config.endpoint_name
        if config.port is not None and config.port != live.get("port"):
            raise EndpointError(
                f"endpoint {name} serves on port {live.get('port')}; it cannot move to port "
                f"{config.port} "
                "while serving",
                hint=f"delete it first (mlcicd endpoints delete {name})",
            )
        config_path = edir / CONFIG_FILE
        previous = config_path.read_bytes() if config_path.is_file() else None
        atomic_write_json(config_path, serving.to_dict())
        digest = sha256_bytes(config_path.read_bytes())
        if live.get("config_digest") == digest and live.get("status") == IN_SERVICE:
            return self.describe(name)  # already serving exactly this
        attempt_marker = live.get("last_update_at")
        pid, start = live.get("pid"), live.get("pid_start_time")
        if not procinfo.signal_process(pid, start, signal.SIGHUP):
            return self._create(edir, config, serving)  # it died just now: start afresh
        log_path = edir / LOG_FILE
        steps = len(serving.deployment.steps()) if serving.deployment.shifts else 0
        deadline = (
            time.monotonic()
            + 2 * serving.startup_timeout
            + serving.drain_timeout
            + self.launch_timeout
            + steps * (serving.deployment.wait_seconds + 2.0)
        )
        while True:
            alive = procinfo.is_alive(pid, start)
            status = _read(edir / STATUS_FILE) or {}
            if status.get("config_digest") == digest and status.get("status") == IN_SERVICE:
                prune(edir, serving, previous)
                return self.describe(name)
            failed = status.get("last_update_failure")
            if (
                failed
                and status.get("last_update_digest") == digest
                and status.get("last_update_at") != attempt_marker
            ):
                _restore(config_path, previous)
                rollback = status.get("last_rollback") or {}
                if rollback.get("config_name") == config.name:
                    raise EndpointRollbackError(
                        f"update of endpoint {name} to {config.name} was rolled back, it still "
                        f"serves {status.get('config_name')}: {failed}",
                        rollback=rollback,
                        hint=f"see {log_path}",
                    )
                raise EndpointError(
                    f"update of endpoint {name} to {config.name} failed, it still serves "
                    f"{status.get('config_name')}: {failed}",
                    hint=f"see {log_path}",
                )
            if not alive:
                raise exited(name, log_path, "during the update")
            if time.monotonic() > deadline:
                _restore(config_path, previous)
                raise EndpointError(
                    f"update of endpoint {name} did not finish in time", hint=f"see {log_path}"
                )
            time.sleep(POLL_INTERVAL)


# -- helpers ------------------------------------------------------------------------------


def runs_this_version(status: dict[str, Any]) -> bool:
    """Whether the supervisor that wrote ``status`` runs this mlcicd and serving layout."""
    return (
        status.get("layout_version") == LAYOUT_VERSION
        and status.get("mlcicd_version") == __version__
    )


def served_by(status: dict[str, Any]) -> str:
    """The mlcicd that the supervisor that wrote ``status`` runs, for a message."""
    version, layout = status.get("mlcicd_version"), status.get("layout_version")
    if not isinstance(layout, int):
        return "an older mlcicd (it records no version)"
    return f"mlcicd {version} (serving layout {layout})"


def _epoch(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _restore(path: Path, previous: bytes | None) -> None:
    if previous is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_bytes(path, previous)
