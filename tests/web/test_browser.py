"""The dashboard in a real browser: Debian's headless Chromium, driven by selenium, against a
real `mlcicd up` that runs a real pipeline to a real local endpoint.

Each page loads with no console error and no CSP violation (Chromium reports both in its
console log), its charts have one shape per value the API holds, links navigate, and a run
in progress changes the page without a reload. Screenshots of each page, on a laptop's and a
phone's width, go to ``.screenshots/`` (ignored by git; MLCICD_SCREENSHOTS moves it).

Chromium and its driver are installed by ``make browser`` (scripts/browser.sh); a machine
without them FAILS this test with that hint, as the container tests do without podman, unless
MLCICD_SKIP_BROWSER=1 says to skip it on purpose.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.conftest import stop_endpoints
from tests.daemon.conftest import ROWS, ServiceProcess, fast_project
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

SHOTS = Path(os.environ.get("MLCICD_SCREENSHOTS") or Path(__file__).parents[2] / ".screenshots")
ENDPOINT = "iris-classifier-endpoint"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if os.environ.get("MLCICD_SKIP_BROWSER") == "1":
        pytest.skip("MLCICD_SKIP_BROWSER=1: the browser test skipped on purpose")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail(
            "chromium and chromedriver are not installed: `make browser` installs them with apt "
            "(as root), or set MLCICD_SKIP_BROWSER=1 to skip this test on purpose",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def problems(driver: Any) -> list[str]:
    """The console's errors since the last call (a CSP violation is one)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def shapes(driver: Any, selector: str) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, selector))


def shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def invoke(url: str) -> None:
    request = urllib.request.Request(
        url + "/invocations",
        data=json.dumps(ROWS).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def test_the_dashboard_in_a_browser(tmp_path: Path, browser: Any) -> None:
    root = fast_project(tmp_path / "iris")
    service = ServiceProcess(root, tmp_path / "service.log").start()
    try:
        code, answer = service.post("/api/runs", b"{}", {"Content-Type": "application/json"})
        assert code == 202, answer
        run_id = answer["run"]["id"]

        # A run in progress: its page changes under the reader's eyes, without a reload.
        browser.get(f"{service.url}/runs/{run_id}")
        browser.execute_script("window.mlcicdMark = 'not reloaded';")
        first = browser.find_element(By.CSS_SELECTOR, "main dd .st").text
        changed = wait_for(
            "the run page to change on its own",
            lambda: browser.execute_script(
                "var m = document.querySelector('main');"
                "return m.hasAttribute('data-updated') && m.querySelector('dd .st').textContent"
                " !== arguments[0] && window.mlcicdMark;",
                first,
            ),
        )
        assert changed == "not reloaded"
        detail = wait_for(
            "the run to finish",
            lambda: (
                (d := service.get(f"/api/runs/{run_id}"))["run"]["status"]
                not in ("Queued", "Running")
                and d
            ),
        )
        assert detail["run"]["status"] == "Succeeded", (tmp_path / "service.log").read_text()
        wait_for(
            "the page to stop following the run",
            lambda: browser.execute_script(
                "return !document.querySelector('main').hasAttribute('data-live');"
            ),
        )
        started = [s for s in detail["stages"] if s.get("started_at") is not None]
        assert shapes(browser, "svg rect.span") == len(started)
        assert browser.execute_script("return window.mlcicdMark;") == "not reloaded"
        assert problems(browser) == []
        shot(browser, "run")

        # The endpoint it deployed serves; its metric history fills as `mlcicd up` samples it.
        endpoint = service.get(f"/api/endpoints/{ENDPOINT}")
        for _ in range(5):
            invoke(endpoint["endpoint"]["url"])
        history = wait_for(
            "the requests in the endpoint's metric history",
            lambda: (
                (m := service.get(f"/api/endpoints/{ENDPOINT}")["metric_history"]["minutes"])
                and sum(r["invocations"] for r in m) >= 5
                and m
            ),
        )

        pages = {
            "overview": "/",
            "models": "/models",
            "model": f"/models/{detail['stages'][-1]['outputs'].get('group', 'iris-classifier')}/1",
            "endpoints": "/endpoints",
            "endpoint": f"/endpoints/{ENDPOINT}",
            "events": "/events",
        }
        for name, path in pages.items():
            browser.get(service.url + path)
            assert browser.find_element(By.TAG_NAME, "h1").text, path
            assert problems(browser) == [], path
            shot(browser, name)

        browser.get(service.url + f"/endpoints/{ENDPOINT}")
        per_second = browser.find_element(
            By.CSS_SELECTOR, "svg[aria-label='Invocations per second']"
        )
        minutes = {r["minute"] for r in history}
        assert len(per_second.find_elements(By.CSS_SELECTOR, "circle.pt")) >= len(minutes)
        assert shapes(browser, "svg line.mark") >= 5  # the deployment, on each chart

        browser.get(service.url + "/")
        with_elapsed = [s for s in detail["stages"] if s.get("elapsed") is not None]
        assert shapes(browser, "svg rect.bar") == len(with_elapsed)
        browser.find_element(By.CSS_SELECTOR, f"svg a[href='/runs/{run_id}']").click()
        wait_for("the run's page", lambda: browser.current_url.endswith(f"/runs/{run_id}"))
        browser.find_element(By.LINK_TEXT, "Models").click()
        wait_for("the models page", lambda: browser.current_url.endswith("/models"))
        assert problems(browser) == []

        browser.set_window_size(390, 844)  # a phone
        browser.get(f"{service.url}/runs/{run_id}")
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;"
        ), "the run page scrolls sideways on a phone"
        shot(browser, "run-phone")
        browser.set_window_size(1280, 1000)
    finally:
        service.stop()
        stop_endpoints(root)
