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
    # Scalars first: they are most of what a page's data holds (the dashboard converts
    # thousands of records per page, bench/dashboard.py).
    if obj is None or isinstance(obj, int | float | str | bool):
        return obj
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        # Field by field rather than dataclasses.asdict, which deep-copies every value first.
        data = {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for name in ("arn", "elapsed", "verdict"):
            if hasattr(obj, name):
                data[name] = to_jsonable(getattr(obj, name))
        return data
    return str(obj)
