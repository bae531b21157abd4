"""The dashboard's pages as HTML, from the data the API serves: the run page's staging section,
the model list in pages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlcicd.web import data
from mlcicd.web.pages import MODELS_PER_PAGE, models_page, run_page

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


def _packages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "group_name": "iris",
            "version": v,
            "status": "Approved",
            "metrics": {"accuracy": 0.9},
            "commit_sha": "abc",
            "run_id": v,
            "created_at": 0.0,
        }
        for v in range(count, 0, -1)  # newest first, as the registry lists them
    ]


def test_the_model_list_is_paged_newest_first_with_links_both_ways() -> None:
    packages = _packages(2 * MODELS_PER_PAGE + 50)
    first = models_page(["iris"], [("iris", packages)])
    versions = [int(v) for v in re.findall(r'href="/models/iris/(\d+)"', first)]
    assert versions == list(range(len(packages), len(packages) - MODELS_PER_PAGE, -1))
    assert f"versions 1 to {MODELS_PER_PAGE} of {len(packages)}" in first
    assert 'href="/models?page=2"' in first and "page=0" not in first

    last = models_page(["iris"], [("iris", packages)], number=3)
    versions = [int(v) for v in re.findall(r'href="/models/iris/(\d+)"', last)]
    assert versions == list(range(50, 0, -1))
    assert 'href="/models?page=2"' in last and "page=4" not in last
    assert "no models on this page" in models_page(["iris"], [("iris", packages)], number=9)
    few = models_page(["iris"], [("iris", _packages(3))])
    assert "page=" not in few and "versions 1 to" not in few


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5", ""])
def test_a_page_number_is_a_whole_number_from_one(bad: str) -> None:
    assert data.page_number(None) == 1 and data.page_number("3") == 3
    with pytest.raises(ValueError, match="not a page number"):
        data.page_number(bad)
