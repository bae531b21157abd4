"""What a run shows on a terminal: each stage, its status and elapsed time, a live log tail."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import TextIO

ICONS = {"Succeeded": "✓", "Cached": "✓", "Failed": "✗", "Stopped": "■", "Running": "▶"}
TAIL = 6


def _fmt(seconds: float) -> str:
    return f"{seconds:5.1f}s" if seconds < 100 else f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


class TerminalReporter:
    """On a TTY the running stage redraws in place with the last lines of its log;
    elsewhere (CI, pipes) every log line is printed once, indented under its stage."""

    def __init__(self, out: TextIO | None = None, *, live: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._started = 0.0
        self._tail: list[str] = []
        self._drawn = 0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # Reporter protocol ------------------------------------------------------------------
    def stage_started(self, stage: str) -> None:
        with self._lock:
            self._stage, self._started, self._tail = stage, time.monotonic(), []
            if self.live:
                self._redraw()
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()
            else:
                self._write(f"▶ {stage}\n")

    def log(self, stage: str, line: str) -> None:
        with self._lock:
            if self.live:
                self._tail = [*self._tail[-(TAIL - 1) :], line]
                self._redraw()
            else:
                self._write(f"    │ {line}\n")

    def stage_finished(self, stage: str, status: str, elapsed: float, message: str) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._clear()
            label = "cached" if status == "Cached" else status.lower()
            icon = ICONS.get(status, "·")
            self._write(f"{icon} {stage:<9}{_fmt(elapsed)}  {label:<9} {message}\n")
            self._stage = None

    # drawing ------------------------------------------------------------------------------
    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                if self._stage is not None:
                    self._redraw()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _redraw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        self._clear()
        lines = [f"▶ {self._stage:<9}{_fmt(time.monotonic() - self._started)}  running"]
        lines += [f"    │ {line}"[: width - 1] for line in self._tail]
        self._write("".join(line + "\n" for line in lines))
        self._drawn = len(lines)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
