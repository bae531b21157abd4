"""Is a recorded pid still the process we started?

A pid alone is not an identity: after a reboot or a long uptime the number is reused. So
the start time (``/proc/<pid>/stat`` field 22, clock ticks since boot) is recorded next to
the pid and compared. Zombies count as dead. Without ``/proc`` (macOS) only the pid's
existence can be checked.
"""

from __future__ import annotations

import os
import signal

_PROC = "/proc"


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); None if it is gone or a zombie."""
    if not os.path.isdir(_PROC):
        return 0 if _exists(pid) else None
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int | None, recorded_start: int | None) -> bool:
    """True if ``pid`` runs and is the process that started at ``recorded_start``."""
    if not pid or pid <= 0:
        return False
    current = start_time(pid)
    if current is None:
        return False
    return recorded_start is None or current == recorded_start or not os.path.isdir(_PROC)


def signal_process(pid: int | None, recorded_start: int | None, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to ``pid`` only if it is still the recorded process; True if sent."""
    if pid is None or not is_alive(pid, recorded_start):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
