"""service.json in a project's state directory: how the CLI finds the running service.

Written when `mlcicd up` starts serving a project, removed when it stops; a stale file (its
process gone, e.g. after kill -9) is ignored, since the pid is checked with its start time.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlcicd import procinfo
from mlcicd.fsutil import atomic_write_json, read_json

INFO_FILE = "service.json"


def write_info(state_dir: Path, url: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    atomic_write_json(
        state_dir / INFO_FILE, {"pid": pid, "start_time": procinfo.start_time(pid), "url": url}
    )


def remove_info(state_dir: Path) -> None:
    info = running_service(state_dir)
    if info is not None and info.get("pid") == os.getpid():
        (state_dir / INFO_FILE).unlink(missing_ok=True)


def running_service(state_dir: Path) -> dict[str, Any] | None:
    """{"pid", "start_time", "url"} of the live service of this state directory, or None."""
    try:
        info = read_json(state_dir / INFO_FILE)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not procinfo.is_alive(info.get("pid"), info.get("start_time")):
        return None
    return info


def post_json(
    url: str, payload: Any, *, timeout: float = 5.0, headers: dict[str, str] | None = None
) -> int:
    """POST ``payload`` as JSON; the status code (0 when nothing answered)."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0
