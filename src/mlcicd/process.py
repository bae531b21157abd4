"""Run a command as a supervised process group, its output streamed line by line.

Used for training jobs, build environments and the project's tests. Also decides what
environment any child that runs a user's code may see (:func:`child_environment`).

The script runs in its own session (so its own process group): stopping it — at the
deadline, on Ctrl-C, or when the script exits and leaves children behind, as a container
teardown would — reaches every process it started, not only the one we spawned. A child
that starts a session of its own (``setsid``, a daemon) escapes the group; only a container
would catch it, and locally there is none.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# The MLCICD_* variables a child may see: settings that mlcicd's own code in the child reads
# (the serving workers' knobs, the state and cache locations, the AWS endpoint override). Any
# other MLCICD_* is withheld — MLCICD_TOKEN, MLCICD_WEBHOOK_SECRET, and any name added later
# until it is listed here (tests/test_process.py fails for an unlisted name in src/).
CHILD_SETTINGS = frozenset(
    {
        "MLCICD_AWS_ENDPOINT_URL",
        "MLCICD_BALANCE",
        "MLCICD_BATCHING",
        "MLCICD_BATCH_WAIT_MS",
        "MLCICD_CACHE",
        "MLCICD_DIRECT",  # the workers' direct request path (serving/direct.py)
        "MLCICD_FASTPATH",
        "MLCICD_GIT_TIMEOUT",  # a run process fetches its commit (daemon/runner.py)
        "MLCICD_HOME",
        "MLCICD_IMAGE_BASE",  # the build stage's base image (images/build.py)
        "MLCICD_MAX_BATCH",
        "MLCICD_MODEL_SHA256",
        "MLCICD_MONITOR_MIN_SCHEDULE",
        "MLCICD_PODMAN",  # which podman the run process calls (images/podman.py)
        "MLCICD_SAGEMAKER_POLL_SECONDS",
        "MLCICD_SERVE_DIR",
        # the model archive's limits and location, for whichever process extracts it (archive.py)
        "MLCICD_MAX_MODEL_BYTES",
        "MLCICD_MAX_MODEL_MEMBERS",
        "MLCICD_MODEL_DATA_URL",
    }
)
# The variables from which boto3 (and the AWS CLI) take credentials. AWS_REGION, AWS_PROFILE
# and the like are settings, not secrets, and pass.
AWS_CREDENTIALS = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    }
)
_withheld: set[str] = set()  # more names of secrets this process holds: see withhold()

TAIL_LINES = 20
_MAX_LINE = 1 << 16  # longer lines are split, so a runaway progress bar cannot eat memory
_POLL_SECONDS = 0.1
_DRAIN_SECONDS = 2.0  # after the script exits, how long stray writers may keep the pipe open


@dataclass
class ProcessOutcome:
    exit_code: int  # negative: killed by that signal
    timed_out: bool
    tail: list[str] = field(default_factory=list)  # the last TAIL_LINES lines of output


def withhold(name: str) -> None:
    """Never pass variable ``name`` to a child: it holds a secret this process reads (a
    ``service.webhook_secret_env`` not named MLCICD_*)."""
    _withheld.add(name)


def child_environment(
    environ: Mapping[str, str] | None = None, *, aws: bool = False
) -> dict[str, str]:
    """``environ`` (default: this process's) without the secrets a child must not see.

    The service's secrets stay with the service: a training script, a build step, the
    project's tests, an endpoint worker — anything that runs code from the repository — may
    print its environment to a log, write it into a model, or send it away. So:

    - every ``MLCICD_*`` is dropped unless it is in :data:`CHILD_SETTINGS`;
    - any name given to :func:`withhold` is dropped;
    - AWS credentials (:data:`AWS_CREDENTIALS`) are dropped unless ``aws``: only a child
      whose own work needs AWS gets them (the service's run process, which may drive
      SageMaker; an endpoint whose data capture goes to S3). A local training job, a build
      and the project's tests do not — their inputs and outputs are local files.

    What a user configures for the child (``train.environment``, a variant's
    ``environment``) is added by the caller afterwards, so it always reaches the child.
    """
    environ = os.environ if environ is None else environ
    return {
        k: v
        for k, v in environ.items()
        if not (k.startswith("MLCICD_") and k not in CHILD_SETTINGS)
        and k not in _withheld
        and (aws or k not in AWS_CREDENTIALS)
    }


# The libraries' own thread pools (OpenMP: scikit-learn's histogram boosting, XGBoost,
# LightGBM; BLAS), each sized for the whole machine unless told.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def share_cores(env: dict[str, str], workers: int) -> dict[str, str]:
    """``env`` with each of ``workers`` processes' thread pools sized to its share of the
    cores, where ``env`` does not size them itself: ``workers`` pools of a thread per core
    would fight over the cores. Set before the child starts: the libraries read them when
    they are first imported."""
    threads = str(max(1, (os.cpu_count() or 1) // max(1, workers)))
    return {**{name: threads for name in THREAD_VARS}, **env}


# Python's own variables: a script runs in its build's interpreter, never with ours.
PYTHON_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


def script_environment() -> dict[str, str]:
    """What a job's script (training, processing) starts from: :func:`child_environment`
    without Python's variables and any stale ``SM_*`` (the runner sets its own), unbuffered so
    its log arrives line by line. The caller adds the job's environment, then the runner's."""
    env = {
        k: v
        for k, v in child_environment().items()
        if k not in PYTHON_ENV and not k.startswith("SM_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exit_reason(script: str, exit_code: int, log_tail: Sequence[str]) -> str:
    """SageMaker's FailureReason for a ``script`` (``training script``) that failed without
    saying why: how it ended, and the last lines of its log."""
    if exit_code < 0:
        head = f"AlgorithmError: the {script} was killed by signal {-exit_code}"
    else:
        head = f"AlgorithmError: the {script} exited with exit code {exit_code}"
    if not log_tail:
        return head + " (it printed nothing)"
    return head + "; last log lines:\n" + "\n".join(log_tail)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _leader_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Has the process exited? Without reaping it where the OS allows: while it is an
    unreaped zombie its pid (our process group id) cannot be reused, so signalling the
    group stays safe. (macOS before Python 3.13 has no waitid; there we reap.)"""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # already reaped
        return True


def stop_process_group(proc: subprocess.Popen[bytes], grace_seconds: float) -> None:
    """SIGTERM the group, give the leader ``grace_seconds`` to exit, then SIGKILL the group."""
    try:
        _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while not _leader_exited(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        # Always, and even on a second Ctrl-C: children that ignore SIGTERM must not outlive us.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _pump(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    try:
        while chunk := stream.readline(_MAX_LINE):
            lines.put(chunk.decode("utf-8", "replace").rstrip("\r\n"))
    finally:
        lines.put(None)


def run_streaming(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    max_runtime_seconds: float | None = None,
    stop_grace_seconds: float = 5.0,
) -> ProcessOutcome:
    """Run ``cmd``, stdout and stderr merged, calling ``on_line`` for each line (in this thread).

    Past ``max_runtime_seconds`` the process group gets SIGTERM, then SIGKILL after
    ``stop_grace_seconds``; lines printed meanwhile are still delivered. Any exception while
    waiting — ``KeyboardInterrupt`` or one raised by ``on_line`` — stops the group the same
    way and propagates. Raises ``OSError`` if ``cmd`` cannot be started.
    """
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    deadline = start + max_runtime_seconds if max_runtime_seconds is not None else None
    kill_at: float | None = None
    exited_at: float | None = None
    timed_out = eof = False
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and _leader_exited(proc):
                # The job is over when the script exits; whatever it left running goes with it.
                _signal_group(proc.pid, signal.SIGKILL)
                exited_at = now
            if exited_at is None and deadline is not None and not timed_out and now >= deadline:
                timed_out = True
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = now + stop_grace_seconds
            if exited_at is None and kill_at is not None and now >= kill_at:
                _signal_group(proc.pid, signal.SIGKILL)
                kill_at = None
            if exited_at is not None and eof:
                break
            if exited_at is not None and now - exited_at > _DRAIN_SECONDS:
                # A process outside the group still holds the pipe: stop listening to it.
                while (line := lines.get_nowait() if not lines.empty() else None) is not None:
                    tail.append(line)
                    on_line(line)
                break
            try:
                line = lines.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if line is None:
                eof = True
                continue
            tail.append(line)
            on_line(line)
    except BaseException:
        stop_process_group(proc, stop_grace_seconds)
        reader.join(timeout=_DRAIN_SECONDS)
        if not reader.is_alive():
            proc.stdout.close()
        raise
    exit_code = proc.wait()
    if eof:
        reader.join()
        proc.stdout.close()
    return ProcessOutcome(exit_code=exit_code, timed_out=timed_out, tail=list(tail))
