"""Records as JSON-ready data: what the API, ``--json`` and the dashboard's pages send."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlcicd.jsonable import to_jsonable
from mlcicd.state import MonitoringExecution, Run


@dataclasses.dataclass
class Inner:
    where: Path
    tags: tuple[str, ...]


@dataclasses.dataclass
class Outer:
    inner: Inner
    items: list[Inner]
    by_name: dict[int, Inner | None]


def test_records_become_dicts_lists_and_scalars_with_the_properties_readers_use() -> None:
    inner = Inner(Path("/a"), ("x", "y"))
    assert to_jsonable(Outer(inner, [inner], {1: inner, 2: None})) == {
        "inner": {"where": "/a", "tags": ["x", "y"]},
        "items": [{"where": "/a", "tags": ["x", "y"]}],
        "by_name": {"1": {"where": "/a", "tags": ["x", "y"]}, "2": None},
    }
    run = Run(
        **{
            f.name: None
            for f in dataclasses.fields(Run)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        | {"id": 1, "started_at": 10.0, "ended_at": 12.5, "trigger": {"kind": "cli"}}
    )
    data = to_jsonable(run)
    assert data["elapsed"] == 2.5 and data["trigger"] == {"kind": "cli"}
    execution = MonitoringExecution("ep", 0.0, 1.0, "Skipped", reason="no records")
    assert to_jsonable(execution)["verdict"] == "skipped: no records"
