"""A local endpoint's supervisor started from outside: what a deployer is told when it fails.
(Deploys end to end: tests/endpoints/test_local.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.endpoints import local_process
from mlcicd.errors import EndpointError
from mlcicd.serving.config import ServingConfig, VariantSpec
from mlcicd.serving.layout import LOG_FILE

pytestmark = pytest.mark.integration  # supervisors are processes

# The running server, busy: it and its workers keep writing to the endpoint's log.
_BUSY = """
import sys, time
with open(sys.argv[1], "a", buffering=1) as log:
    print("ready", flush=True)
    while True:
        log.write("INFO mlcicd.serving.worker: POST /invocations 200\\n")
        time.sleep(0.002)
"""


def test_a_successor_that_fails_before_its_offer_says_why(tmp_path: Path) -> None:
    """The replacement of a running server cannot read config.json: it never offers to take
    the socket; the deployer hears its reason, not the busy log's last line."""
    edir = tmp_path / "iris"
    (edir / "logs").mkdir(parents=True)
    (edir / "config.json").write_text("{not json")
    running = subprocess.Popen(
        [sys.executable, "-c", _BUSY, str(edir / LOG_FILE)], stdout=subprocess.PIPE
    )
    try:
        assert running.stdout is not None and running.stdout.readline() == b"ready\n"
        status = {"status": "InService", "pid": running.pid, "launch_id": "the-old-one"}
        status["pid_start_time"] = procinfo.start_time(running.pid)
        (edir / "status.json").write_text(json.dumps(status))
        serving = ServingConfig(name="cfg-2", variants=(VariantSpec("AllTraffic", "m", "c"),))
        with pytest.raises(
            EndpointError, match=r"cannot read .*config\.json: not valid JSON"
        ) as caught:
            local_process.launch(
                edir, "iris", serving, launch_timeout=60.0, stop_timeout=10.0, take_over=True
            )
        assert caught.value.hint == f"see {edir / LOG_FILE}"
        assert running.poll() is None  # the running server serves on
    finally:
        running.kill()
        running.wait()
        assert running.stdout is not None
        running.stdout.close()
