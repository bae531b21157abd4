"""A running endpoint's listening socket handed to a supervisor of another mlcicd version.

A supervisor runs the code it was started with, but the workers it starts import whatever
mlcicd is installed now. After an upgrade the two may no longer agree on what they share
(the connection board's size was one: "mmap length is greater than file size"), so a deploy
by another version (:data:`mlcicd.serving.layout.LAYOUT_VERSION` or ``mlcicd.__version__``
differ from what status.json records) replaces the supervisor itself rather than asking the
old one to start new workers. The listening socket moves, not the address: the kernel's
accept queue belongs to the socket, so the connections waiting in it, and those arriving
meanwhile, are answered by whichever generation accepts next. No request is refused.

The protocol, kept as it is across versions (add to it, never change it):

1. The successor (``supervisor --take-over``) binds a unix socket in a private temporary
   directory, records ``{"pid", "start_time", "launch_id", "socket", "protocol"}`` in
   ``run/successor.json`` and sends the running supervisor SIGUSR2.
2. The running supervisor connects and sends :data:`MAGIC` with its listening socket
   (SCM_RIGHTS); each side checks the other's pid (SO_PEERCRED) against what it expects.
3. The successor starts its generation on that socket. Once it is ready it sends SIGUSR1:
   its predecessor stops writing status.json, drains its workers and exits; the successor
   writes status.json once it is gone. If the generation fails, the successor records why
   in ``run/successor.json`` and exits: the predecessor never stopped serving. (So does a
   successor that fails before step 1: its record then names no socket.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.errors import EndpointError
from mlcicd.fsutil import atomic_write_json, read_object
from mlcicd.serving.layout import SUCCESSOR_FILE

PROTOCOL = 1
MAGIC = b"mlcicd-handover 1"
HAND_OVER = signal.SIGUSR2  # to the running supervisor: send your socket to the successor
SUPERSEDED = signal.SIGUSR1  # to the running supervisor: the successor serves; drain and exit
_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid

log = logging.getLogger("mlcicd.serving.handover")


def peer_pid(conn: socket.socket) -> int:
    """The pid of the process at the other end of the unix socket ``conn``, or -1 (no pid)
    when it runs as another user: the handover is between one user's processes only, even
    if the endpoint's ``run/`` were ever writable by others."""
    pid, uid, _ = _CREDS.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    return int(pid) if uid == os.geteuid() else -1


class Offer:
    """The successor's side: a unix socket only its owner can reach, announced in
    ``run/successor.json`` (a temporary directory keeps its path within unix sockets' 108
    bytes, however deep the endpoint's directory is)."""

    def __init__(self, state_dir: Path, launch_id: str | None) -> None:
        self.state_dir = state_dir
        self.launch_id = launch_id
        self._dir = tempfile.mkdtemp(prefix="mlcicd-handover-")  # mode 0700
        self.path = os.path.join(self._dir, "s")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(4)
        self._record({})

    def _record(self, extra: dict[str, Any]) -> None:
        _record(self.state_dir, self.launch_id, {"socket": self.path, **extra})

    def receive(self, pid: int, start: int | None, timeout: float) -> socket.socket:
        """Ask supervisor ``pid`` for its listening socket; wait up to ``timeout`` seconds."""
        if not procinfo.signal_process(pid, start, HAND_OVER):
            raise EndpointError(f"the endpoint server to take over (pid {pid}) is gone")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not procinfo.is_alive(pid, start):
                raise EndpointError(
                    f"the endpoint server (pid {pid}) did not hand its socket over within "
                    f"{timeout:g}s"
                )
            self._listener.settimeout(min(remaining, 0.5))
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                if peer_pid(conn) != pid:  # not the supervisor: whoever it is, ignore it
                    log.warning("a handover from pid %d, not %d, was ignored", peer_pid(conn), pid)
                    continue
                conn.settimeout(max(deadline - time.monotonic(), 0.1))
                message, fds, _, _ = socket.recv_fds(conn, len(MAGIC) + 16, 1)
            return _listening(message, fds, pid)

    def failed(self, reason: str) -> None:
        """Tell the deployer why this successor gave up (status.json is not ours to write)."""
        self._record({"failure_reason": reason})

    def close(self) -> None:
        self._listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def failed_before_offer(state_dir: Path, launch_id: str | None, reason: str) -> None:
    """:meth:`Offer.failed` for a successor that gave up before it had an offer (config.json
    unreadable, no running server named): the endpoint's log is shared with the running
    server and its workers, so its last line is no successor's reason."""
    _record(state_dir, launch_id, {"failure_reason": reason})


def _record(state_dir: Path, launch_id: str | None, extra: dict[str, Any]) -> None:
    pid = os.getpid()
    atomic_write_json(
        state_dir / SUCCESSOR_FILE,
        {
            "pid": pid,
            "start_time": procinfo.start_time(pid),
            "launch_id": launch_id,
            "protocol": PROTOCOL,
            **extra,
        },
    )


def _listening(message: bytes, fds: list[int], pid: int) -> socket.socket:
    if message != MAGIC or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise EndpointError(f"the endpoint server (pid {pid}) sent {message[:40]!r}, not a socket")
    if not stat.S_ISSOCK(os.fstat(fds[0]).st_mode):  # socket() would raise and leak it
        os.close(fds[0])
        raise EndpointError(
            f"the endpoint server (pid {pid}) sent a descriptor that is not a socket"
        )
    sock = socket.socket(fileno=fds[0])
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.close()
        raise EndpointError(f"the endpoint server (pid {pid}) sent a socket that does not listen")
    sock.setblocking(False)  # as bind_socket: shared with every worker
    return sock


def hand_over(state_dir: Path, sock: socket.socket) -> bool:
    """The running supervisor's side: send ``sock`` to the successor recorded in
    ``run/successor.json``, if it is alive and is the process at the socket's other end.
    True once sent; what went wrong is logged (the successor times out and says so)."""
    record = read_object(state_dir / SUCCESSOR_FILE) or {}
    pid, path = record.get("pid"), record.get("socket")
    if not isinstance(pid, int) or not isinstance(path, str):
        log.warning("asked to hand the socket over, but %s names no successor", SUCCESSOR_FILE)
        return False
    if not procinfo.is_alive(pid, record.get("start_time")):
        log.warning("asked to hand the socket over, but the successor (pid %d) is gone", pid)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5.0)
            conn.connect(path)
            if peer_pid(conn) != pid:
                log.warning("the handover socket %s is not the successor's (pid %d)", path, pid)
                return False
            socket.send_fds(conn, [MAGIC], [sock.fileno()])
    except OSError as exc:
        log.warning("cannot hand the socket over to pid %d: %s", pid, exc)
        return False
    log.info("handed the listening socket over to the successor (pid %d)", pid)
    return True


def clear(state_dir: Path) -> None:
    """The successor serves: its record has nothing more to say."""
    with contextlib.suppress(OSError):
        (state_dir / SUCCESSOR_FILE).unlink()
