"""`mlcicd up` as a real process on 127.0.0.1, over copies of examples/iris in git repositories."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all, git, make_repo, stop_endpoints
from tests.helpers import as_json, drop_staging, mlcicd, set_yaml, wait_for

SECRET = "it's a secret to everybody"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def fast_project(path: Path) -> Path:
    """A committed iris copy whose build skips the project's own tests and whose run has no
    staging stage (they are not the point)."""
    project = make_repo(path)
    set_yaml(project, "test: python -m pytest -q tests", "test: python -c pass")
    drop_staging(project)
    commit_all(project, "fast build")
    return project


class ServiceProcess:
    """`python -m mlcicd up PROJECT --port 0` with its output in a file."""

    def __init__(self, project: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.project = project
        self.log = log
        self.env = {**os.environ, "MLCICD_WEBHOOK_SECRET": SECRET, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> ServiceProcess:
        """Start `mlcicd up`, and wait until its service.json names it.

        A service.json left behind (a kill -9 cannot remove it) stays: the new process must
        see past it, as it would for a user.
        """
        info = self.project / ".mlcicd" / "service.json"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mlcicd", "up", str(self.project), "--port", "0"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.project,
            )

        def ready() -> str | None:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                written = json.loads(info.read_text())
            except (OSError, ValueError):
                return None
            return str(written["url"]) if written.get("pid") == self.process.pid else None

        self.url = wait_for("the service to listen", ready, 60)
        return self

    def auth(self) -> dict[str, str]:
        """What the CLI sends: the token from the project's state directory, the user's name."""
        token = self.project / ".mlcicd" / "service.token"
        return {
            "Authorization": f"Bearer {token.read_text().strip() if token.exists() else ''}",
            "X-Mlcicd-User": os.environ.get("USER") or getpass.getuser(),
        }

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers=self.auth())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def post(
        self, path: str, body: bytes, headers: dict[str, str], *, token: bool = True
    ) -> tuple[int, Any]:
        """POST ``body``; with ``token``, as the CLI would (the token and the user's name added)."""
        sent = {**(self.auth() if token else {}), **headers}
        request = urllib.request.Request(self.url + path, data=body, method="POST", headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGTERM)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Services a test starts; stopped (and their endpoints) afterwards."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        service.stop()
        stop_endpoints(service.project)


def run_status(project: Path, run_id: int) -> str:
    return str(as_json(mlcicd(project, "runs", "show", str(run_id), "--json"))["run"]["status"])


def finished(project: Path, run_id: int) -> str | None:
    status = run_status(project, run_id)
    return status if status not in ("Queued", "Running") else None


__all__ = ["commit_all", "git"]
