"""The processes of a local endpoint, driven from outside: start its supervisor and wait until
it serves, tell whether it still runs, stop it and its workers.

The supervisor (:mod:`mlcicd.serving.supervisor`) records itself in supervisor.pid (from its
launcher) and in status.json, with its workers. A recorded process is alive when its pid runs
and started when recorded (:mod:`mlcicd.procinfo`), so a reused pid never counts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.endpoints.base import CREATING, FAILED, IN_SERVICE, OUT_OF_SERVICE, UPDATING
from mlcicd.errors import EndpointError, PortInUseError
from mlcicd.fsutil import open_private_log, read_object
from mlcicd.process import child_environment
from mlcicd.serving.config import ServingConfig
from mlcicd.serving.layout import LOG_FILE, PID_FILE, STATUS_FILE, SUCCESSOR_FILE

POLL_INTERVAL = 0.05  # how often a waiting caller reads status.json again
TAKE_OVER_GRACE = 90.0  # the handover and the old server's exit, beyond the new one's start


def launch(
    edir: Path,
    name: str,
    serving: ServingConfig,
    *,
    launch_timeout: float,
    stop_timeout: float,
    take_over: bool = False,
) -> None:
    """Start a supervisor on the config.json in ``edir``; wait for InService or Failed.

    Returns once it is InService; raises :class:`PortInUseError` or :class:`EndpointError`
    with the reason otherwise (one not InService in time is stopped first). With
    ``take_over`` it replaces the running supervisor (:mod:`mlcicd.serving.handover`), which
    serves until then and on if this one fails.
    """
    if take_over:
        (edir / SUCCESSOR_FILE).unlink(missing_ok=True)
    else:
        for stale in (STATUS_FILE, PID_FILE):
            (edir / stale).unlink(missing_ok=True)
    log_path = edir / LOG_FILE
    python = serving.python or sys.executable
    launch_id = uuid.uuid4().hex
    cmd = [
        python,
        "-m",
        "mlcicd.serving.supervisor",
        str(edir),
        "--detach",
        "--launch-id",
        launch_id,
        *(["--take-over"] if take_over else []),
    ]
    try:
        with open_private_log(log_path, "ab") as log:
            launcher = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=edir,
                # Without mlcicd's secrets; with AWS credentials, which worker_env gives only
                # to the workers of a generation that captures to S3.
                env=child_environment(aws=True),
                start_new_session=True,
            )
    except OSError as exc:
        raise EndpointError(f"cannot start the endpoint server with {python}: {exc}") from exc
    try:
        code = launcher.wait(timeout=launch_timeout)
    except subprocess.TimeoutExpired:
        launcher.kill()
        launcher.wait()
        raise EndpointError(
            f"the endpoint server of {name} did not start", hint=f"see {log_path}"
        ) from None
    if code != 0:
        raise EndpointError(
            f"the endpoint server of {name} could not start ({_tail(log_path)})",
            hint=f"see {log_path}",
        )
    record = read_object(edir / PID_FILE) or {}
    pid, start = record.get("pid"), record.get("start_time")
    deadline = time.monotonic() + serving.startup_timeout + launch_timeout
    if take_over:  # the socket handed over, and the old server drained
        deadline += serving.drain_timeout + TAKE_OVER_GRACE
    while True:
        alive = procinfo.is_alive(pid, start)  # first: if it died, the status read next is final
        status = read_object(edir / STATUS_FILE)
        if status is not None and status.get("launch_id") == launch_id:
            pid, start = status.get("pid"), status.get("pid_start_time")
            state = status.get("status")
            if state == IN_SERVICE:
                return
            if state in (FAILED, OUT_OF_SERVICE):
                _wait_gone(pid, start, 10.0)
                reason = status.get("failure_reason") or "stopped while starting"
                if status.get("failure_kind") == "port_in_use":
                    raise PortInUseError(
                        f"cannot start endpoint {name}: {reason}",
                        hint="choose another port (deploy.port), or stop what listens on it",
                    )
                raise EndpointError(
                    f"endpoint {name} failed to start: {reason}", hint=f"see {log_path}"
                )
        successor = read_object(edir / SUCCESSOR_FILE) if take_over else None
        if successor is not None and successor.get("launch_id") == launch_id:
            reason = successor.get("failure_reason")
            if reason:
                _wait_gone(pid, start, 10.0)
                raise EndpointError(str(reason), hint=f"see {log_path}")
        if not alive:  # a successor shares the log with the server that still runs
            raise exited(name, log_path, "while starting", pid=pid if take_over else None)
        if time.monotonic() > deadline:
            if take_over:  # the running server serves on: stop only the successor
                procinfo.signal_process(pid, start, signal.SIGTERM)
                raise EndpointError(
                    f"the new endpoint server of {name} was not InService after "
                    f"{serving.startup_timeout:g}s; it was stopped, the old one serves on",
                    hint=f"see {log_path}",
                )
            stop(edir, stop_timeout)
            raise EndpointError(
                f"endpoint {name} was not InService after {serving.startup_timeout:g}s; it was "
                "stopped",
                hint=f"see {log_path}",
            )
        time.sleep(POLL_INTERVAL)


def live_status(edir: Path) -> dict[str, Any] | None:
    """status.json if its supervisor runs and serves (or is about to)."""
    status = read_object(edir / STATUS_FILE)
    if status is None or status.get("status") not in (CREATING, UPDATING, IN_SERVICE):
        return None
    if not procinfo.is_alive(status.get("pid"), status.get("pid_start_time")):
        return None
    return status


def stop(edir: Path, timeout: float) -> None:
    """SIGTERM the supervisor (its workers drain), SIGKILL whatever outlives the timeout."""
    status = read_object(edir / STATUS_FILE) or {}
    launcher = read_object(edir / PID_FILE) or {}
    supervisors = {
        (status.get("pid"), status.get("pid_start_time")),
        (launcher.get("pid"), launcher.get("start_time")),
    }
    workers = {
        (w.get("pid"), w.get("start_time"))
        for w in status.get("workers", [])
        if isinstance(w, dict)
    }
    processes = [p for p in supervisors | workers if p[0]]
    for pid, start in supervisors:
        procinfo.signal_process(pid, start, signal.SIGTERM)
    if not _wait_gone_all(supervisors, timeout):
        for pid, start in supervisors:
            procinfo.signal_process(pid, start, signal.SIGKILL)
    # Workers end with their supervisor (PR_SET_PDEATHSIG); make sure of it.
    for pid, start in workers:
        procinfo.signal_process(pid, start, signal.SIGTERM)
    if not _wait_gone_all(set(processes), 10.0):
        for pid, start in processes:
            procinfo.signal_process(pid, start, signal.SIGKILL)
        _wait_gone_all(set(processes), 5.0)


def exited(name: str, log_path: Path, when: str, *, pid: int | None = None) -> EndpointError:
    """The error for endpoint ``name``'s server that died ``when``, with the last line it
    logged: the last line of the log, or, given its ``pid``, its own last line (a successor's
    log is the running server's and its workers' too)."""
    return EndpointError(
        f"the endpoint server of {name} exited {when} ({_tail(log_path, pid)})",
        hint=f"see {log_path}",
    )


def _tail(path: Path, pid: int | None = None, limit: int = 1 << 20) -> str:
    """The last non-empty line within ``limit`` bytes of the log's end: process ``pid``'s
    last if given and it logged one (its lines name it: ``supervisor[<pid>]``,
    :mod:`mlcicd.serving.logs`; a traceback it died of does not)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - limit))
            lines = [
                line for line in fh.read().decode("utf-8", "replace").splitlines() if line.strip()
            ]
    except OSError:
        return "no log"
    own = [line for line in lines if f"[{pid}] " in line] if pid is not None else []
    return (own or lines or ["nothing logged"])[-1].strip()


def _wait_gone(pid: int | None, start: int | None, timeout: float) -> bool:
    return _wait_gone_all({(pid, start)}, timeout)


def _wait_gone_all(processes: set[tuple[Any, Any]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(procinfo.is_alive(pid, start) for pid, start in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True
