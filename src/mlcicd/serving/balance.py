"""Spread connections evenly over an endpoint's workers.

All workers accept from one listening socket. Left to the kernel and the event loops, the
first worker to wake takes every connection waiting (asyncio and libuv both accept until
the backlog is empty): 8 keep-alive clients arriving together were measured split 7/1 and
5/3, and the clients of the crowded worker wait twice as long — that was the p99.

The supervisor keeps a small board in shared memory (an unlinked file each worker maps):
one slot per accepting worker with the number of connections it holds. A worker accepts
only while no other accepting worker holds fewer, so the least loaded takes the next
connection. A worker that defers looks again every :data:`DEFER_SECONDS` and takes a
connection that has waited :data:`TAKE_AFTER_SECONDS`, so a busy or stuck peer delays a
client by at most that, never refuses one. The board is advisory: a stale count costs
balance, not correctness.

Each slot also holds its worker's heartbeat: the time (``time.monotonic()``, one clock for
every process) its event loop last ran (:mod:`mlcicd.serving.watchdog`). A peer whose loop
has not run for :data:`BUSY_AFTER_SECONDS` cannot accept, so it is not waited for; the
supervisor replaces a worker whose loop stalls past ``model_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import select
import socket
import tempfile
import time
from collections.abc import Callable

from mlcicd import __version__
from mlcicd.errors import EndpointError

log = logging.getLogger("mlcicd.serving.balance")

SLOTS = 64  # workers of every generation alive at once, replacements included
ABSENT = -1  # the slot's worker is not accepting (starting, draining, gone)
DEFER_SECONDS = 0.001  # how often a deferring worker looks again
TAKE_AFTER_SECONDS = 0.01  # how long a connection waits for the least loaded worker
_RETRY_AFTER_ERROR = 0.1  # EMFILE and friends: let connections close before trying again
BUSY_AFTER_SECONDS = 1.0  # a peer whose loop has not run this long is not waited for
_COUNTS_BYTES = SLOTS * 4


class ConnectionBoard:
    """Connections held and heartbeats, per worker slot; shared by the supervisor and its
    workers."""

    def __init__(self, fd: int, *, create: bool = False) -> None:
        size = _COUNTS_BYTES + SLOTS * 8
        if create:
            os.ftruncate(fd, size)
        elif (actual := os.fstat(fd).st_size) != size:  # mmap would say only "length > size"
            raise EndpointError(
                f"the supervisor's connection board (fd {fd}) holds {actual} bytes where this "
                f"worker (mlcicd {__version__}) needs {size}: the endpoint's server runs another "
                "mlcicd version",
                hint="deploy the endpoint again with this version: the deploy replaces its server",
            )
        self.fd = fd
        self._map = mmap.mmap(fd, size)
        self.counts = memoryview(self._map)[:_COUNTS_BYTES].cast("i")  # aligned int32: never torn
        self.beats = memoryview(self._map)[_COUNTS_BYTES:].cast("d")  # aligned float64; 0: none yet
        if create:
            for slot in range(SLOTS):
                self.counts[slot] = ABSENT
        self._claimed: set[int] = set()

    @classmethod
    def create(cls) -> ConnectionBoard:
        """A new board (the supervisor's): an unlinked file, its fd inherited by workers."""
        with tempfile.TemporaryFile(prefix="mlcicd-board-") as handle:
            fd = os.dup(handle.fileno())
        return cls(fd, create=True)

    # -- the supervisor's side -------------------------------------------------------------

    def claim(self) -> int | None:
        """A free slot for a new worker; None when all are taken (it then accepts freely)."""
        for slot in range(SLOTS):
            if slot not in self._claimed:
                self._claimed.add(slot)
                self.counts[slot] = ABSENT
                self.beats[slot] = 0.0
                return slot
        return None

    def release(self, slot: int | None) -> None:
        """The slot's worker has exited: whatever it last wrote no longer counts."""
        if slot is not None:
            self.counts[slot] = ABSENT
            self.beats[slot] = 0.0
            self._claimed.discard(slot)

    def stalled_for(self, slot: int | None, now: float) -> float:
        """How long the slot's event loop has not run (0 before its first heartbeat)."""
        beat = self.beats[slot] if slot is not None else 0.0
        return now - beat if beat > 0 else 0.0

    def close(self) -> None:
        self.counts.release()
        self.beats.release()
        self._map.close()
        os.close(self.fd)

    # -- a worker's side -------------------------------------------------------------------

    def beat(self, slot: int, now: float) -> None:
        """The slot's event loop ran at ``now``."""
        self.beats[slot] = now

    def least_loaded(self, slot: int) -> bool:
        """Whether no other accepting worker that can accept holds fewer connections than
        ``slot``'s (one whose loop has stalled cannot: it is not waited for)."""
        mine = self.counts[slot]
        for other, n in enumerate(self.counts):
            if (
                n != ABSENT
                and n < mine
                and self.stalled_for(other, time.monotonic()) < BUSY_AFTER_SECONDS
            ):
                return False
        return True


class BalancedAcceptor:
    """Accepts connections for one worker: its share of them, each given to ``protocol``."""

    def __init__(
        self,
        sock: socket.socket,
        protocol: Callable[[], asyncio.Protocol],
        *,
        board: ConnectionBoard | None = None,
        slot: int | None = None,
    ) -> None:
        self.sock = sock
        self.protocol = protocol
        self.board = board if slot is not None else None
        self.slot = slot if board is not None else None
        self.connections = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._waiting_since: float | None = None  # a connection has waited for another worker
        self._tcp = sock.family in (socket.AF_INET, socket.AF_INET6)

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        self._publish()
        self.loop.add_reader(self.sock, self._on_readable)

    def close(self) -> None:
        """Stop accepting (the socket stays open in the other workers: nothing is lost)."""
        if self._closed:
            return
        self._closed = True
        if self.board is not None and self.slot is not None:
            self.board.counts[self.slot] = ABSENT
        if self.loop is not None:
            self.loop.remove_reader(self.sock)
        self.sock.close()

    def released(self) -> None:
        """A connection this worker accepted has closed."""
        self.connections -= 1
        self._publish()

    def _publish(self) -> None:
        if self.board is not None and self.slot is not None and not self._closed:
            self.board.counts[self.slot] = self.connections

    def _my_turn(self) -> bool:
        return self.board is None or self.slot is None or self.board.least_loaded(self.slot)

    def _on_readable(self) -> None:
        if self._my_turn():
            self._accept()
        else:
            self._defer(DEFER_SECONDS)

    def _defer(self, delay: float) -> None:
        """Stop watching the socket for ``delay``; a connection still waiting then is ours
        once it has waited :data:`TAKE_AFTER_SECONDS` (the least loaded worker is busy)."""
        assert self.loop is not None
        if self._waiting_since is None:
            self._waiting_since = self.loop.time()
        self.loop.remove_reader(self.sock)
        self.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        if self._closed:
            return
        assert self.loop is not None
        if not self._waiting():  # another worker took it
            self._waiting_since = None
            self.loop.add_reader(self.sock, self._on_readable)
            return
        assert self._waiting_since is not None
        if self._my_turn() or self.loop.time() - self._waiting_since >= TAKE_AFTER_SECONDS:
            self._accept(take_one=True)
        else:
            self._defer(DEFER_SECONDS)

    def _accept(self, *, take_one: bool = False) -> None:
        """Take connections while it is our turn (and one more with ``take_one``)."""
        assert self.loop is not None
        while take_one or self._my_turn():
            take_one = False
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EMFILE, ENOBUFS...: the worker lives on
                log.warning("cannot accept a connection: %s", exc)
                self._defer(_RETRY_AFTER_ERROR)
                return
            conn.setblocking(False)
            if self._tcp:
                with contextlib.suppress(OSError):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
            self._publish()
            self.loop.create_task(self._connect(conn))
        else:  # no longer our turn: whatever still waits is the least loaded worker's
            self._waiting_since = None
            self._defer(DEFER_SECONDS)
            return
        self._waiting_since = None
        self.loop.add_reader(self.sock, self._on_readable)

    def _waiting(self) -> bool:
        """Whether a connection waits to be accepted (without taking it)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def _make_protocol(self) -> asyncio.Protocol:
        protocol = self.protocol()
        protocol.on_close = self.released  # type: ignore[attr-defined]
        return protocol

    async def _connect(self, conn: socket.socket) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(self._make_protocol, conn)
        except Exception as exc:  # the client may already be gone
            log.debug("a connection could not be set up: %s", exc)
            conn.close()
            self.released()
