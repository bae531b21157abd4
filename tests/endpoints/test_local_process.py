"""A local endpoint's supervisor started from outside: what a deployer is told when it fails.
(Deploys end to end: tests/endpoints/test_local.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.endpoints import local_process
from mlcicd.errors import EndpointError
from mlcicd.fsutil import read_object
from mlcicd.serving.config import ServingConfig, VariantSpec
from mlcicd.serving.layout import LOG_FILE, SUCCESSOR_FILE
from tests.helpers import wait_for

pytestmark = pytest.mark.integration  # supervisors are processes

# The running server, busy: it and its workers keep writing to the endpoint's log.
_BUSY = """
import signal, sys, time
signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # asked for its socket: it never answers
with open(sys.argv[1], "a", buffering=1) as log:
    print("ready", flush=True)
    while True:
        log.write("INFO mlcicd.serving.worker: POST /invocations 200\\n")
        time.sleep(0.002)
"""


@pytest.fixture
def running(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Endpoint ``iris`` in tmp_path, served by a busy server: status.json names it."""
    edir = tmp_path / "iris"
    (edir / "logs").mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", _BUSY, str(edir / LOG_FILE)], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        status = {"status": "InService", "pid": proc.pid, "launch_id": "the-old-one"}
        status["pid_start_time"] = procinfo.start_time(proc.pid)
        (edir / "status.json").write_text(json.dumps(status))
        yield proc
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


SERVING = ServingConfig(name="cfg-2", variants=(VariantSpec("AllTraffic", "m", "c"),))


def _take_over(edir: Path) -> None:
    local_process.launch(
        edir, "iris", SERVING, launch_timeout=60.0, stop_timeout=10.0, take_over=True
    )


def test_a_successor_that_fails_before_its_offer_says_why(
    tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    """The replacement of a running server cannot read config.json: it never offers to take
    the socket; the deployer hears its reason, not the busy log's last line."""
    edir = tmp_path / "iris"
    (edir / "config.json").write_text("{not json")
    with pytest.raises(
        EndpointError, match=r"cannot read .*config\.json: not valid JSON"
    ) as caught:
        _take_over(edir)
    assert caught.value.hint == f"see {edir / LOG_FILE}"
    assert running.poll() is None  # the running server serves on


def test_a_successor_killed_while_taking_over_is_quoted_by_its_own_lines(
    tmp_path: Path, running: subprocess.Popen[bytes]
) -> None:
    """A successor that dies without a word (SIGKILL: the OOM killer) records nothing: the
    deployer is told the last line the successor itself logged, not the running server's."""
    edir = tmp_path / "iris"
    (edir / "config.json").write_text(json.dumps(SERVING.to_dict()))
    with ThreadPoolExecutor(1) as pool:
        launched = pool.submit(_take_over, edir)
        offer = wait_for(
            "the successor's offer", lambda: read_object(edir / SUCCESSOR_FILE), timeout=120
        )
        said = f"supervisor[{offer['pid']}] INFO mlcicd.serving.supervisor: taking over"
        wait_for("its line", lambda: said in (edir / LOG_FILE).read_text(), timeout=120)
        os.kill(offer["pid"], signal.SIGKILL)
        with pytest.raises(
            EndpointError,
            match=rf"exited while starting \(.*supervisor\[{offer['pid']}\] INFO .*taking over "
            rf"from the endpoint server \(pid {running.pid}\)\)",
        ):
            launched.result(timeout=120)
    assert running.poll() is None
