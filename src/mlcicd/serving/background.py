"""A bounded queue drained by one daemon thread: how work leaves the hot path.

``offer`` never blocks a request: when the queue is full the item is dropped and
``on_drop`` counts it. Data capture and the shadow variant are both built on it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

STOP = object()  # put by close(): the thread drains what came before it, then ends


class BackgroundQueue:
    def __init__(self, name: str, on_drop: Callable[[], Any], queue_size: int) -> None:
        self.on_drop = on_drop
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def offer(self, item: Any) -> None:
        """Queue ``item``, or drop and count it: never blocks."""
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.on_drop()

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put(STOP, timeout=timeout)
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
