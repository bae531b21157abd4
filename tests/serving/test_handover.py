"""The listening socket's handover between supervisors: only the expected peer takes part.
(The handover end to end, under load: tests/endpoints/test_local.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd import procinfo
from mlcicd.errors import EndpointError
from mlcicd.serving import handover

pytestmark = pytest.mark.integration  # processes and unix sockets

# A process that stands for the running supervisor: it outlives SIGUSR2 and does nothing.
_IDLE = (
    "import signal, time; signal.signal(signal.SIGUSR2, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", _IDLE], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"  # SIGUSR2 no longer kills it
    yield proc
    proc.kill()
    proc.wait()
    proc.stdout.close()


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
        # This process is not the supervisor the offer waits for; its socket waits in the
        # offer's backlog until receive accepts it.
        with (
            socket.create_server(("127.0.0.1", 0)) as listener,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor,
        ):
            impostor.connect(offer.path)
            socket.send_fds(impostor, [handover.MAGIC], [listener.fileno()])
            with pytest.raises(EndpointError, match="did not hand its socket over within 2s"):
                offer.receive(bystander.pid, _start(bystander), timeout=2.0)
        assert bystander.poll() is None
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


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
    reason="needs root and the system's python3, to run a process as nobody",
)
def test_a_peer_of_another_user_has_no_pid() -> None:
    """Both sides match the peer's pid; a process of another user never matches, whatever
    pid it has (as if the endpoint's run/ were writable by others)."""
    tag = f"mlcicd-handover-test-{os.getpid()}"
    name = "\0" + tag  # an abstract address: no file permissions in the way
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen(1)
        listener.settimeout(60)  # guards against hanging, not a measure
        other = subprocess.Popen(
            [
                "/usr/bin/python3",
                "-c",
                "import socket, sys, time; s = socket.socket(socket.AF_UNIX); "
                "s.connect(chr(0) + sys.argv[1]); time.sleep(60)",
                tag,
            ],
            cwd="/",
            user=65534,  # nobody
            group=65534,
        )
        try:
            conn, _ = listener.accept()
            with conn:
                assert handover.peer_pid(conn) == -1
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mine:
                mine.connect(name)
                conn, _ = listener.accept()
                with conn:
                    assert handover.peer_pid(conn) == os.getpid()
        finally:
            other.kill()
            other.wait()


# The running supervisor gone wrong: asked for its socket, it sends a pipe's end with MAGIC.
_SENDS_A_PIPE = """
import json, os, signal, socket, sys
read, write = os.pipe()
def send(*_):
    record = json.load(open(sys.argv[1]))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(record["socket"])
        socket.send_fds(conn, [sys.argv[2].encode()], [read])
signal.signal(signal.SIGUSR2, send)
print(os.fstat(read).st_ino, flush=True)
while True:
    signal.pause()
"""


def _held() -> set[str]:
    """What this process's descriptors are open on (the listing's own one is gone by then)."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
    return held


def test_a_descriptor_that_is_not_a_socket_is_closed_and_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    offer = handover.Offer(tmp_path, "launch-1")
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SENDS_A_PIPE,
            str(tmp_path / "run" / "successor.json"),
            handover.MAGIC.decode(),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert sender.stdout is not None
        pipe = f"pipe:[{int(sender.stdout.readline())}]"  # its handler is installed
        with pytest.raises(EndpointError, match="sent a descriptor that is not a socket"):
            offer.receive(sender.pid, _start(sender), timeout=60.0)
        assert pipe not in _held()
    finally:
        sender.kill()
        sender.wait()
        assert sender.stdout is not None
        sender.stdout.close()
        offer.close()
