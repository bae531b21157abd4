"""A container endpoint's address: one listening socket on ``127.0.0.1``, held by a small
host process for as long as the endpoint exists, served by each of its containers in turn.

    python -m mlcicd.endpoints.listener <endpoint_dir> [--port PORT]

Why a process of its own: a port published into a container (``podman run --publish``)
belongs to that container, so an update had to choose between a new port (a new URL) and
stopping the old container before the new one could bind (requests refused meanwhile). Here
the socket is bound once, on the host, and each container is started with it as fd 3
(``podman run --preserve-fds 1``, ``LISTEN_FDS=1``: systemd-style socket activation,
:func:`mlcicd.serving.sockets.activated_socket`). The old and the new container accept
from the same socket — the same kernel accept queue — so the switch is the local backend's:
start the new one, let the old one drain, and no connection is refused or dropped.

This process never accepts a connection of the endpoint: it only holds the socket, and
hands a duplicate to whoever connects to ``listener.sock`` (a Unix socket in the endpoint
directory, mode 0600: only the endpoint's owner). Nothing of it is on the request path.
Its pid, start time and port are in ``listener.json``. SIGTERM ends it (``endpoints
delete``); once the containers have exited too, the port is free.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlcicd import procinfo
from mlcicd.errors import EndpointError, PortInUseError
from mlcicd.fsutil import atomic_write_text, read_object
from mlcicd.process import child_environment
from mlcicd.serving.sockets import bind_socket

LISTENER_FILE = "listener.json"
SOCKET_FILE = "listener.sock"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
ACCEPT_BOUND_US = 1000  # the longest an accept() on the shared socket may block (see _serve)


@contextlib.contextmanager
def _in_dir(edir: Path) -> Iterator[str]:
    """A short path to ``edir`` (/proc/self/fd/N): a Unix socket's path is limited to 107
    bytes, and an endpoint directory may be deeper than that."""
    fd = os.open(edir, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def running(edir: Path) -> dict[str, int] | None:
    """``{"pid", "start_time", "port"}`` of the endpoint's listener if it runs, else None."""
    record = read_object(edir / LISTENER_FILE)
    if not record or not procinfo.is_alive(record.get("pid"), record.get("start_time")):
        return None
    return {k: int(record[k]) for k in ("pid", "start_time", "port")}


def start(edir: Path, port: int | None) -> int:
    """Start the listener of ``edir`` on ``port`` (None: any free one); the port it holds.

    :class:`PortInUseError` when the port is taken, :class:`EndpointError` otherwise.
    """
    cmd = [sys.executable, "-m", "mlcicd.endpoints.listener", str(edir)]
    if port is not None:
        cmd += ["--port", str(port)]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            stdin=subprocess.DEVNULL,
            env=child_environment(),  # it runs no user code, but needs no secret either
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EndpointError(f"cannot start the listener of {edir.name}: {exc}") from exc
    said = (done.stderr or done.stdout).strip()
    if done.returncode == 3:
        raise PortInUseError(
            f"endpoint {edir.name}: port {port} is already in use",
            hint="choose another deploy.port, or stop what listens on it",
        )
    record = running(edir)
    if done.returncode != 0 or record is None:
        raise EndpointError(
            f"the listener of endpoint {edir.name} did not start: {said or 'no output'}"
        )
    return record["port"]


def stop(edir: Path, timeout: float = 10.0) -> None:
    """SIGTERM the listener of ``edir``, if it runs, and wait until it has exited."""
    record = read_object(edir / LISTENER_FILE) or {}
    pid, start_time = record.get("pid"), record.get("start_time")
    procinfo.signal_process(pid, start_time, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while procinfo.is_alive(pid, start_time) and time.monotonic() < deadline:
        time.sleep(0.05)
    procinfo.signal_process(pid, start_time, signal.SIGKILL)
    (edir / LISTENER_FILE).unlink(missing_ok=True)


def socket_fd(edir: Path) -> int:
    """A duplicate of the endpoint's listening socket, received from its listener: a new
    file descriptor (not inheritable) that the caller closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, _in_dir(edir) as short:
        conn.settimeout(10)
        try:
            conn.connect(f"{short}/{SOCKET_FILE}")
            _, fds, _, _ = socket.recv_fds(conn, 16, 1)
        except OSError as exc:
            raise EndpointError(
                f"cannot take the listening socket of endpoint {edir.name} from its listener: "
                f"{exc}",
                hint="redeploy the endpoint; its listener (listener.json) may have been stopped",
            ) from exc
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise EndpointError(f"the listener of endpoint {edir.name} sent no socket")
    return fds[0]


def _serve(edir: Path, port: int | None) -> int:
    try:
        tcp = bind_socket(HOST, port or 0)
    except PortInUseError as exc:
        print(exc.message, file=sys.stderr)
        return 3
    # The socket's file (and its O_NONBLOCK flag) is shared by every process holding it, and
    # starting a container clears that flag (runc passes the fd as a Go os/exec ExtraFile, and
    # Go makes those blocking): a worker of the old container that then calls accept() would
    # wait for the next connection while its own clients wait for it. A receive timeout
    # bounds that accept() to 1 ms, whoever changes the flag (the deployer restores it too).
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, ACCEPT_BOUND_US))
    os.umask(0o077)  # the socket file: the owner's only
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with _in_dir(edir) as short:
        path = f"{short}/{SOCKET_FILE}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        unix.bind(path)
    unix.listen(16)
    # Detach: the deployer waits for this process's first half only.
    pid = os.fork()
    if pid:
        record = {"pid": pid, "start_time": procinfo.start_time(pid), "port": tcp.getsockname()[1]}
        atomic_write_text(edir / LISTENER_FILE, json.dumps(record) + "\n")
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # the deployer reads our output to its end: let it end
        os.dup2(devnull, std)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            conn, _ = unix.accept()
        except InterruptedError:
            continue
        with conn, contextlib.suppress(OSError):  # a caller that went away
            socket.send_fds(conn, [b"L"], [tcp.fileno()])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlcicd.endpoints.listener", description=__doc__
    )
    parser.add_argument("endpoint_dir", type=Path)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    return _serve(args.endpoint_dir.resolve(), args.port)


if __name__ == "__main__":
    sys.exit(main())
