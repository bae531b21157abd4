"""An endpoint's listening socket, however it reaches a process: bound here
(:func:`bind_socket`, the supervisor of a local endpoint), handed over systemd-style
(:func:`activated_socket`, a container served from the host's listener,
:mod:`mlcicd.endpoints.listener`), or inherited by a worker from its supervisor
(:func:`inherited_socket`). Every worker of the endpoint accepts from the one socket, so it
is non-blocking everywhere.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import MutableMapping

from mlcicd.errors import PortInUseError


def bind_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The endpoint's listening socket; :class:`PortInUseError` if ``port`` is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)  # shared with every worker: none may ever block in accept()
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} is already in use",
                hint="choose another port, or stop what listens on it",
            ) from exc
        raise
    return sock


LISTEN_FDS_START = 3  # systemd's SD_LISTEN_FDS_START: the first inherited socket
SOCKET_ACTIVATION_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def activated_socket(env: MutableMapping[str, str]) -> socket.socket | None:
    """The listening socket handed to this process (systemd-style ``LISTEN_FDS``), or None.

    A container endpoint's socket is bound on the host and outlives its containers
    (:mod:`mlcicd.endpoints.listener`): each container serves it from fd 3, so an update
    moves no address and the kernel's accept queue carries the requests across. The
    variables are removed from ``env`` (the workers get the socket by its number, and
    must not take themselves for activated). ``LISTEN_PID``, when set, must be this
    process (systemd's rule: the variables were meant for it, not for a parent).
    Raises ValueError saying what is wrong with what was handed over.
    """
    count, pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    for name in SOCKET_ACTIVATION_ENV:
        env.pop(name, None)
    if not count:
        return None
    if pid and pid != str(os.getpid()):
        return None
    if count != "1":
        raise ValueError(f"LISTEN_FDS={count}: one listening socket is expected (fd 3)")
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as exc:
        raise ValueError(f"LISTEN_FDS=1 but fd 3 is not a socket: {exc}") from exc
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise ValueError("LISTEN_FDS=1 but fd 3 is not a listening TCP socket")
    sock.setblocking(False)  # as bind_socket: shared with every worker
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket behind ``fd`` (family and protocol read from the fd itself).

    ``socket.fromfd(fd, AF_UNIX, ...)`` as uvicorn's ``fd=`` option does would mislabel a TCP
    socket, and TCP_NODELAY would be skipped on every accepted connection.
    """
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock
