"""Durations as people write them, in mlcicd.yaml and on the command line: ``90s``, ``30m``,
``1h30m``, ``2d``, ``1w`` — one or more numbers, each with its unit, in any order."""

from __future__ import annotations

import re

_PART_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float | None:
    """Seconds, or None when ``text`` is not a duration (a bare number has no unit: None)."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART_RE.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """``300`` → ``5m``, ``5400`` → ``1h30m``, ``2.5`` → ``2.5s``: what parse_duration reads
    back."""
    if seconds < 60 and not float(seconds).is_integer():
        return f"{seconds:g}s"
    rest, out = int(seconds), ""
    for unit in ("w", "d", "h", "m", "s"):
        count, rest = divmod(rest, _UNITS[unit])
        if count:
            out += f"{count}{unit}"
    return out or "0s"


__all__ = ["format_duration", "parse_duration"]
