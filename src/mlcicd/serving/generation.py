"""Worker processes as the supervisor sees them: how one starts, what it reports, how it ended.

A :class:`Generation` is the set of workers started from one serving config; each
:class:`Worker` is a ``python -m mlcicd.serving.worker`` child holding the shared listening
socket and the write end of a pipe, on which it reports JSON lines: ``{"event": "ready"}``
once it serves (or ``{"event": "failed", "error": ...}`` if the model did not load), then
``{"event": "draining"}`` once, told to stop, it no longer accepts connections — or
``{"event": "stalled", "error": ...}`` as a handler that stalled its loop makes it exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.process import child_environment, share_cores
from mlcicd.serving.config import ServingConfig


@dataclass(eq=False)
class Worker:
    proc: subprocess.Popen[bytes]
    generation: Generation
    status_fd: int | None  # read end of the worker's status pipe, until EOF
    start_time: int | None
    state: str = "starting"  # starting → ready → stopping (or stalled: being killed)
    accepting: bool = False  # between its "ready" and "draining" events
    error: str | None = None  # what the worker reported when it failed
    exit_code: int | None = None
    ready_at: float = 0.0
    kill_at: float = 0.0
    buffer: bytes = b""
    slot: int | None = None  # on the supervisor's connection board
    compiled: dict[str, list[str]] | None = None  # per variant, from its "ready" event

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_events(self) -> list[dict[str, Any]] | None:
        """The events that arrived on the status pipe; None at its end (EOF)."""
        assert self.status_fd is not None
        try:
            chunk = os.read(self.status_fd, 4096)
        except BlockingIOError:
            return []
        except OSError:
            chunk = b""
        if not chunk:
            return None
        self.buffer += chunk
        events = []
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unreadable", "line": line[:200].decode("utf-8", "replace")}
            events.append(event if isinstance(event, dict) else {"event": "unreadable"})
        return events


@dataclass(eq=False)
class Generation:
    number: int
    config: ServingConfig
    digest: str  # sha256 of the config.json bytes it was started from
    spec_path: Path  # the frozen config its workers (and their replacements) load
    workers: list[Worker] = field(default_factory=list)
    crashes: int = 0  # consecutive, for the restart backoff
    restarts_due: list[float] = field(default_factory=list)


def spawn_worker(
    gen: Generation,
    sock_fd: int,
    *,
    cwd: Path,
    log_hint: str,
    board_fd: int | None = None,
    slot: int | None = None,
) -> Worker:
    """Start one worker of ``gen`` on the listening socket ``sock_fd`` (sharing new
    connections fairly through the board at ``board_fd``, in ``slot``, when given)."""
    read_fd, write_fd = os.pipe()
    config = gen.config
    cmd = [
        config.python or sys.executable,
        "-m",
        "mlcicd.serving.worker",
        "--fd",
        str(sock_fd),
        "--spec",
        str(gen.spec_path),
        "--status-fd",
        str(write_fd),
        "--generation",
        str(gen.number),
        "--parent-pid",
        str(os.getpid()),
        "--log-hint",
        log_hint,
    ]
    fds = [sock_fd, write_fd]
    if board_fd is not None and slot is not None:
        cmd += ["--board-fd", str(board_fd), "--slot", str(slot)]
        fds.append(board_fd)
    try:
        proc = subprocess.Popen(
            cmd,
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env=worker_env(config),
            cwd=cwd,  # not the code dir: nothing there may shadow our own imports
        )
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    os.set_blocking(read_fd, False)
    return Worker(proc, gen, read_fd, procinfo.start_time(proc.pid), slot=slot)


def worker_env(config: ServingConfig) -> dict[str, str]:
    """The supervisor's environment, the SageMaker variables, and the variants' own.

    AWS credentials only when the workers need them, to write captured data to S3.
    """
    capture = config.capture
    env = child_environment(aws=capture is not None and capture.destination.startswith("s3://"))
    first = config.variants[0]
    env.setdefault("SAGEMAKER_PROGRAM", first.entry_point)
    env.setdefault("SAGEMAKER_SUBMIT_DIRECTORY", first.code_dir)
    # One worker per core: BLAS/OpenMP pools sized for the whole machine would fight.
    most = config.autoscaling.max_instances if config.autoscaling else config.workers
    env = share_cores(env, most)
    for variant in config.variants:
        env.update(variant.environment)
    return env


def exit_text(code: int | None) -> str:
    """``exit code 3`` or ``signal SIGKILL``."""
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def last_line(path: Path, limit: int = 4096) -> str:
    """The last line of a log file: usually a dead worker's last words."""
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
