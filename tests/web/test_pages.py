"""The dashboard's pages as HTML, from the data the API serves: the run page's staging section."""

from __future__ import annotations

from typing import Any

from mlcicd.web.pages import run_page

RUN = {"id": 7, "status": "Failed", "pipeline": "iris", "failed_stage": "staging"}


def staging(status: str, outputs: dict[str, Any]) -> dict[str, Any]:
    return {"stage": "staging", "status": status, "message": "why", "outputs": outputs}


def test_the_run_page_shows_the_endpoint_tests_and_load_figures() -> None:
    outputs = {
        "endpoint": "iris-staging",
        "model": "iris/2",
        "test": {
            "command": "python -m pytest tests/endpoint -q",
            "exit_code": 1,
            "timed_out": False,
            "counts": {"failed": 3, "passed": 5},
            "tail": ["FAILED tests/endpoint/test_endpoint.py::test_known_rows <b>", "3 failed"],
        },
        "load": {
            "requests": 200,
            "rps": 812.4,
            "p50_ms": 2.5,
            "p99_ms": 9.75,
            "errors": 0,
            "error_rate": 0.0,
            "bounds": {"p99_ms": 5.0, "max_error_rate": 0.0},
            "passed": False,
        },
    }
    html = run_page("iris", ["iris"], {"run": RUN, "stages": [staging("Failed", outputs)]}, {})
    assert "<h2>Staging</h2>" in html
    assert "3 failed, 5 passed (exit 1): `python -m pytest tests/endpoint -q`" in html
    assert "p99 9.75 ms (bound 5 ms), 0 errors (0.00%, bound 0.00%) — MISSED" in html
    assert "test_known_rows &lt;b&gt;" in html  # the failed tests' tail, escaped


def test_a_run_without_staging_has_no_staging_section() -> None:
    html = run_page("iris", ["iris"], {"run": RUN, "stages": []}, {})
    assert "Staging" not in html
