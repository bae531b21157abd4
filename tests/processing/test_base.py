"""A step's report is the job's output, read as data: whatever its bytes, a clear error."""

from __future__ import annotations

import pytest

from mlcicd.errors import ProcessingError
from mlcicd.processing.base import MAX_REPORT_BYTES, parse_report

WHERE = "step evaluate: report metrics/evaluation.json"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000, "not JSON"),  # under the size cap, deeper than json's recursion
        (b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b" " * (MAX_REPORT_BYTES + 1), "larger than"),
    ],
)
def test_a_hostile_report_is_a_processing_error_naming_it(data: bytes, message: str) -> None:
    with pytest.raises(ProcessingError, match=message) as raised:
        parse_report(data, WHERE)
    assert raised.value.message.startswith(WHERE)


def test_a_report_is_its_json_object() -> None:
    assert parse_report(b'{"metrics": {"accuracy": 0.9}}', WHERE) == {"metrics": {"accuracy": 0.9}}
