"""The listening socket's handover between supervisors: only the expected peer takes part.
(The handover end to end, under load: tests/endpoints/test_local.py.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.errors import EndpointError
from mlcicd.serving import handover

pytestmark = pytest.mark.integration  # processes and unix sockets

# A process that stands for the running supervisor: it outlives SIGUSR2 and does nothing.
_IDLE = "import signal, time; signal.signal(signal.SIGUSR2, signal.SIG_IGN); time.sleep(600)"


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", _IDLE])
    yield proc
    proc.kill()
    proc.wait()


def _start(proc: subprocess.Popen[bytes]) -> int | None:
    return procinfo.start_time(proc.pid)


def test_a_socket_from_anyone_but_the_running_server_is_ignored(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    (tmp_path / "run").mkdir()
    offer = handover.Offer(tmp_path, "launch-1")
    try:
        recorded = json.loads((tmp_path / "run" / "successor.json").read_text())
        assert recorded["socket"] == offer.path and recorded["launch_id"] == "launch-1"
        sent = threading.Event()
        listener = socket.create_server(("127.0.0.1", 0))

        def impostor() -> None:  # this process is not the supervisor the offer waits for
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.connect(offer.path)
                socket.send_fds(conn, [handover.MAGIC], [listener.fileno()])
            sent.set()

        thread = threading.Thread(target=impostor)
        thread.start()
        with pytest.raises(EndpointError, match="did not hand its socket over within 2s"):
            offer.receive(bystander.pid, _start(bystander), timeout=2.0)
        thread.join(10)
        assert sent.is_set()
        listener.close()
    finally:
        offer.close()


def test_the_socket_is_sent_only_to_the_recorded_successor(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    """successor.json names a live process, but the unix socket there is someone else's."""
    (tmp_path / "run").mkdir()
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as trap:
        trap.bind(path)
        trap.listen(1)
        record = {"pid": bystander.pid, "start_time": _start(bystander), "socket": path}
        (tmp_path / "run" / "successor.json").write_text(json.dumps(record))
        with socket.create_server(("127.0.0.1", 0)) as listening:
            assert handover.hand_over(tmp_path, listening) is False
        conn, _ = trap.accept()
        with conn:
            conn.settimeout(5)
            message, fds, _, _ = socket.recv_fds(conn, 64, 1)
        assert (message, fds) == (b"", [])  # closed without a word, and no socket
