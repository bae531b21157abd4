"""Connections spread evenly over workers: the board and the acceptor, in threads with their
own event loops on one real listening socket (as worker processes share it), and through the
supervisor with real worker processes."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlcicd.errors import EndpointError
from mlcicd.serving.balance import ABSENT, BUSY_AFTER_SECONDS, BalancedAcceptor, ConnectionBoard
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import request
from tests.serving.test_supervisor import Start, in_service, start_supervisor, write_config

__all__ = ["start_supervisor"]  # the fixture, imported for the integration test


class Echo(asyncio.Protocol):
    """Answers each chunk with the same bytes; tells its acceptor when it closes."""

    on_close: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.on_close is not None:
            self.on_close()


class Worker:
    """An acceptor on its own event loop in a thread: a worker process, as far as the
    socket and the board can tell."""

    def __init__(
        self, listener: socket.socket, board: ConnectionBoard | None, slot: int | None
    ) -> None:
        self.loop = asyncio.new_event_loop()
        self.protocols: list[Echo] = []
        # A socket on a duplicate of the listener's fd, as a worker inherits it (not
        # socket.dup(), which would make the shared file description blocking again).
        sock = socket.socket(fileno=os.dup(listener.fileno()))
        self.acceptor = BalancedAcceptor(sock, self._protocol, board=board, slot=slot)
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started.wait(5)

    def _protocol(self) -> Echo:
        protocol = Echo()
        self.protocols.append(protocol)
        return protocol

    def _shutdown(self) -> None:
        self.acceptor.close()
        for protocol in self.protocols:
            protocol.transport.close()
        self.loop.call_soon(self.loop.call_soon, self.loop.stop)  # after connection_lost

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.acceptor.start)
        self.loop.call_soon(self.started.set)
        self.loop.run_forever()

    def block(self, until: threading.Event) -> None:
        """Keep the event loop busy until ``until`` is set, as a long prediction would;
        return once it is busy."""
        busy = threading.Event()

        def hold() -> None:
            busy.set()
            until.wait()

        self.loop.call_soon_threadsafe(hold)
        assert busy.wait(5), "the worker's loop never ran"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._shutdown)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    yield sock
    sock.close()


@pytest.fixture
def board() -> Iterator[ConnectionBoard]:
    board = ConnectionBoard.create()
    yield board
    board.close()


def connect(listener: socket.socket) -> socket.socket:
    """A connection that has been accepted and answered (so a worker holds it)."""
    client = socket.create_connection(listener.getsockname(), timeout=5)
    client.sendall(b"x")
    assert client.recv(1) == b"x"
    return client


def test_a_board_hands_out_slots_and_forgets_released_ones(board: ConnectionBoard) -> None:
    first, second = board.claim(), board.claim()
    assert (first, second) == (0, 1) and board.counts[0] == ABSENT
    board.counts[0], board.counts[1] = 3, 2
    assert board.least_loaded(1) and not board.least_loaded(0)
    board.release(1)  # its worker exited: its count no longer holds the others back
    assert board.least_loaded(0) and board.claim() == 1 and board.counts[1] == ABSENT


def test_a_worker_that_is_not_accepting_does_not_count(board: ConnectionBoard) -> None:
    a, b = board.claim(), board.claim()
    assert a is not None and b is not None
    board.counts[a] = 5  # b is still starting (ABSENT)
    assert board.least_loaded(a)


def test_a_peer_whose_loop_stalled_is_not_waited_for(board: ConnectionBoard) -> None:
    stalled, busy = board.claim(), board.claim()
    assert stalled is not None and busy is not None
    board.counts[stalled], board.counts[busy] = 0, 3
    now = time.monotonic()
    board.beat(stalled, now)
    assert not board.least_loaded(busy)  # the peer with fewer is alive: it takes the next one
    board.beat(stalled, now - BUSY_AFTER_SECONDS - 1)  # its loop has not run since
    assert board.least_loaded(busy) and board.stalled_for(stalled, now) > BUSY_AFTER_SECONDS
    board.release(stalled)  # a replacement starts with no heartbeat: not stalled
    assert board.claim() == stalled and board.stalled_for(stalled, now) == 0.0


def test_connections_are_shared_evenly(listener: socket.socket, board: ConnectionBoard) -> None:
    workers = [Worker(listener, board, board.claim()) for _ in range(2)]
    clients = []
    try:
        for _ in range(8):
            clients.append(connect(listener))
        assert [w.acceptor.connections for w in workers] == [4, 4]
        for client in clients[:3]:  # the count follows closes too
            client.close()
        wait_for(
            "5 connections accepted",
            lambda: sum(w.acceptor.connections for w in workers) == 5,
            timeout=5,
        )
        assert [board.counts[i] for i in (0, 1)] == [w.acceptor.connections for w in workers]
        clients.append(connect(listener))  # the next goes to whichever holds fewer
        assert sorted(w.acceptor.connections for w in workers) in ([2, 4], [3, 3])
    finally:
        for client in clients:
            client.close()
        for worker in workers:
            worker.stop()


def test_a_worker_that_joins_late_gets_the_new_connections(
    listener: socket.socket, board: ConnectionBoard
) -> None:
    first = Worker(listener, board, board.claim())
    clients = [connect(listener) for _ in range(6)]
    late = Worker(listener, board, board.claim())  # a replacement, say
    try:
        clients += [connect(listener) for _ in range(4)]
        assert (first.acceptor.connections, late.acceptor.connections) == (6, 4)
    finally:
        for client in clients:
            client.close()
        first.stop()
        late.stop()


def test_a_busy_least_loaded_worker_delays_a_client_never_strands_it(
    listener: socket.socket, board: ConnectionBoard
) -> None:
    busy, free = (Worker(listener, board, board.claim()) for _ in range(2))
    clients = []
    try:
        clients += [connect(listener), connect(listener)]  # one each
        assert busy.acceptor.connections == free.acceptor.connections == 1
        clients.append(connect(listener))
        holder, other = (busy, free) if busy.acceptor.connections == 2 else (free, busy)
        released = threading.Event()
        other.block(released)  # the least loaded worker cannot accept until released
        try:
            # So the holder takes it after a short wait: answered while the other is still
            # blocked (a stranded client would be answered only after the release).
            clients.append(connect(listener))
            assert holder.acceptor.connections == 3 and other.acceptor.connections == 1
        finally:
            released.set()
    finally:
        for client in clients:
            client.close()
        busy.stop()
        free.stop()


def test_a_closed_acceptor_leaves_the_board(
    listener: socket.socket, board: ConnectionBoard
) -> None:
    worker = Worker(listener, board, board.claim())
    slot = worker.acceptor.slot
    assert slot is not None and board.counts[slot] == 0
    worker.stop()
    assert board.counts[slot] == ABSENT


def _held_by(pid: int, port: int) -> int:
    """Connections to ``port`` that process ``pid`` holds (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    held = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and state == "01" and inode in inodes:  # 01: ESTABLISHED
            held += 1
    return held


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_endpoints_workers_share_keep_alive_clients(
    tmp_path: Path, iris: IrisModel, start_supervisor: Start
) -> None:
    state_dir = write_config(tmp_path / "ep", iris, workers=2)
    start_supervisor(state_dir)
    status = in_service(state_dir)
    port = int(status["url"].rsplit(":", 1)[1])
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
    try:
        for client in clients:  # a request on each, so each is held by a worker
            client.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        held = sorted(_held_by(w["pid"], port) for w in status["workers"])
        assert held == [4, 4]
        assert request(status["url"], "GET", "/ping").status == 200
    finally:
        for client in clients:
            client.close()


def test_a_board_of_another_layout_is_refused_with_the_reason(tmp_path: Path) -> None:
    """A worker of a newer mlcicd started by an older supervisor: its board is shorter than
    this version's (mmap alone says only "mmap length is greater than file size")."""
    with open(tmp_path / "board", "w+b") as handle:
        handle.truncate(64 * 4)  # counts only: an older layout, without the heartbeats
        with pytest.raises(EndpointError, match=r"holds 256 bytes .* another mlcicd version"):
            ConnectionBoard(handle.fileno())
    board = ConnectionBoard.create()  # the supervisor's own: its workers map it as it is
    try:
        ConnectionBoard(os.dup(board.fd)).close()
    finally:
        board.close()
