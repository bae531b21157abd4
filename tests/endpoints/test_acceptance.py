"""The staging stage's checks, apart from any endpoint: the test command's outcome."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlcicd.endpoints.acceptance import failed_test_tail, run_endpoint_tests

# What pytest prints where CI is set: a short summary whose assertion message is not cut,
# so a long diff follows the name and the last lines no longer hold it.
_PYTEST_IN_CI = """
print("tests/endpoint/test_endpoint.py F.")
print("FAILED tests/endpoint/test_endpoint.py::test_known_rows - AssertionError: assert [")
for i in range(40):
    print(f"    'versicolor-{i}',")
print("]")
print("1 failed, 1 passed in 0.07s")
raise SystemExit(1)
"""


def test_the_failed_tests_are_named_however_long_their_messages(tmp_path: Path) -> None:
    script = tmp_path / "fake_pytest.py"
    script.write_text(_PYTEST_IN_CI)
    outcome = run_endpoint_tests(
        f"{sys.executable} {script}", cwd=tmp_path, env=dict(os.environ), timeout=60, log=print
    )
    assert not outcome.passed and outcome.counts == {"failed": 1, "passed": 1}
    assert outcome.failed == ["FAILED tests/endpoint/test_endpoint.py::test_known_rows"]
    assert not any("FAILED" in line for line in outcome.tail)  # pushed out of the tail
    shown = failed_test_tail({"test": outcome.summary()})
    assert shown[0] == "FAILED tests/endpoint/test_endpoint.py::test_known_rows"
    assert shown[-1] == "1 failed, 1 passed in 0.07s"


def test_passing_tests_show_nothing(tmp_path: Path) -> None:
    outcome = run_endpoint_tests(
        f"{sys.executable} -c pass", cwd=tmp_path, env=dict(os.environ), timeout=60, log=print
    )
    assert outcome.passed and failed_test_tail({"test": outcome.summary()}) == []
