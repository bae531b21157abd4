"""What a staging endpoint is checked with, whichever backend serves it: the project's
endpoint tests (``staging.test``, run with the endpoint's address and the SageMaker runtime's
variables), the load check against ``staging.load``'s bounds, and the results as a person
reads them (`mlcicd runs show`, the dashboard).

The staging stage (:mod:`mlcicd.stages.staging`) calls these on this machine; the AWS
pipeline's test action runs the same command with the same variables.
"""

from __future__ import annotations

import re
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcicd.endpoints.load import LoadResult, run_load
from mlcicd.errors import EndpointError, StagingError
from mlcicd.process import run_streaming

# What the SageMaker runtime client of a test is given for an endpoint on this machine: it
# signs requests, so it needs credentials, which the local server does not check.
LOCAL_RUNTIME_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "staging",
    "AWS_SECRET_ACCESS_KEY": "staging",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
PING_POLL_SECONDS = 0.05
_PYTEST_COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
# pytest's short summary: "FAILED tests/x.py::test_y - message" (the message may run on for
# many lines where CI is set, pushing the names out of the tail: they are kept as they pass).
_PYTEST_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")
MAX_FAILED_NAMED = 50


@dataclass
class EndpointTestOutcome:
    """What ``staging.test`` did: its exit code, pytest's counts when it is pytest, its tail."""

    command: str
    exit_code: int
    timed_out: bool
    counts: dict[str, int] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # pytest's "FAILED <test id>" lines

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def summary(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "counts": self.counts,
            "tail": self.tail,
            "failed": self.failed,
        }


def endpoint_test_environment(
    base: Mapping[str, str], *, url: str, endpoint_name: str, runtime_url: str | None
) -> dict[str, str]:
    """``base`` (already stripped of secrets) with what an endpoint test reads: the endpoint's
    URL and name, and — for an endpoint served on this machine (``runtime_url``) — the
    SageMaker runtime's endpoint override and dummy credentials, so boto3's
    ``sagemaker-runtime`` client calls the local server."""
    env = dict(base)
    env["MLCICD_ENDPOINT_URL"] = url
    env["MLCICD_ENDPOINT_NAME"] = endpoint_name
    if runtime_url is not None:
        env.update(LOCAL_RUNTIME_CREDENTIALS)
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = runtime_url
    return env


def run_endpoint_tests(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    log: Callable[[str], None],
) -> EndpointTestOutcome:
    """Run ``staging.test`` (``command``) in ``cwd`` with ``env``, bounded by ``timeout``.
    ``StagingError`` naming the key when it cannot start; a failing command is an outcome."""
    log(f"$ {command}")
    failed: list[str] = []

    def on_line(line: str) -> None:
        log(line)
        named = _PYTEST_FAILED.match(line)
        if named and len(failed) < MAX_FAILED_NAMED:
            failed.append(f"{named[1]} {named[2]}")

    try:
        outcome = run_streaming(
            shlex.split(command), cwd=cwd, env=env, on_line=on_line, max_runtime_seconds=timeout
        )
    except OSError as exc:
        raise StagingError(
            f"cannot run the endpoint tests `{command}`: {exc}",
            hint="check staging.test: its program must be in the build environment "
            "(build.requirements or build.test_requirements) or on PATH",
        ) from exc
    counts: dict[str, int] = {}
    for line in reversed(outcome.tail):
        found = _PYTEST_COUNTS.findall(line)
        if found:
            for number, what in found:
                counts["errors" if what.startswith("error") else what] = int(number)
            break
    return EndpointTestOutcome(
        command, outcome.exit_code, outcome.timed_out, counts, outcome.tail, failed
    )


def load_check(
    url: str, body: bytes, content_type: str, requests: int, concurrency: int
) -> LoadResult:
    """``requests`` POSTs of ``body`` to the endpoint's invocations at ``concurrency``."""
    return run_load(
        url.rstrip("/") + "/invocations",
        body,
        requests=requests,
        concurrency=concurrency,
        content_type=content_type,
    )


def missed_bounds(figures: Mapping[str, Any], bounds: Mapping[str, Any]) -> list[str]:
    """Each bound of ``staging.load`` the figures miss, as ``what: figure > bound``."""
    missed = []
    p99 = bounds.get("p99_ms")
    if p99 is not None and not figures["p99_ms"] <= p99:
        missed.append(f"p99 {figures['p99_ms']:.1f} ms > staging.load.p99_ms {p99:g} ms")
    if figures["error_rate"] > bounds["max_error_rate"]:
        why = f" (first: {figures['first_error']})" if figures.get("first_error") else ""
        missed.append(
            f"error rate {figures['error_rate']:.2%} ({figures['errors']} of "
            f"{figures['requests']}) > staging.load.max_error_rate "
            f"{bounds['max_error_rate']:.2%}{why}"
        )
    return missed


def wait_for_ping(url: str, timeout: float, endpoint: str) -> None:
    """Until ``url``/ping answers 200; ``EndpointError`` naming the key after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise EndpointError(
                f"the staging endpoint {endpoint} at {url} did not answer /ping within "
                f"{timeout:g}s ({last})",
                hint="deploy.startup_timeout bounds it; "
                f"`mlcicd endpoints logs {endpoint}` shows the server's log",
            )
        time.sleep(PING_POLL_SECONDS)


def summarize_tests(test: dict[str, Any] | None) -> str:
    if test is None:
        return "no endpoint tests configured"
    counts = test.get("counts") or {}
    if counts:
        return ", ".join(f"{n} {what}" for what, n in counts.items())
    return f"tests exited {test['exit_code']}"


def staging_facts(outputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The staging stage's outputs as (what, text) lines for a person: `mlcicd runs show` and
    the dashboard's run page print the same ones."""
    facts: list[tuple[str, str]] = []
    if outputs.get("endpoint"):
        facts.append(("staging endpoint", f"{outputs['endpoint']} (model {outputs.get('model')})"))
    test = outputs.get("test")
    if test:
        state = "timed out" if test.get("timed_out") else f"exit {test['exit_code']}"
        facts.append(("endpoint tests", f"{summarize_tests(test)} ({state}): `{test['command']}`"))
    load = outputs.get("load")
    if load:
        bounds = load.get("bounds") or {}
        p99 = f" (bound {bounds['p99_ms']:g} ms)" if bounds.get("p99_ms") is not None else ""
        facts.append(
            (
                "load check",
                f"{load['requests']} requests, {load['rps']:.0f} req/s, "
                f"p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms{p99}, "
                f"{load['errors']} errors "
                f"({load['error_rate']:.2%}, bound {bounds.get('max_error_rate', 0):.2%})"
                + ("" if load.get("passed", True) else " — MISSED"),
            )
        )
    return facts


def failed_test_tail(outputs: Mapping[str, Any]) -> list[str]:
    """When the endpoint tests failed, what a person reads first: the tests pytest named as
    failed, then the output's last lines."""
    test = outputs.get("test") or {}
    if not test or test.get("exit_code") == 0:
        return []
    tail = list(test.get("tail") or [])
    named = [line for line in test.get("failed") or [] if not any(t.startswith(line) for t in tail)]
    return [*named, *tail]
