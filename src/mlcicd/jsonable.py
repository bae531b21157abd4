"""Records as JSON-ready data: what ``--json``, the service's API and the web pages send.

It lives apart from the CLI so that library code (the service, the web pages) can answer in
JSON without importing the command line.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def to_jsonable(obj: Any) -> Any:
    """``obj`` as dicts, lists and scalars; a dataclass keeps the properties its readers use
    (``arn``, ``elapsed``, ``verdict``); anything else becomes its ``str``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        data = dataclasses.asdict(obj)
        for name in ("arn", "elapsed", "verdict"):
            if hasattr(obj, name):
                data[name] = getattr(obj, name)
        return to_jsonable(data)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, int | float | str | bool) or obj is None:
        return obj
    return str(obj)
