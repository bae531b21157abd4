"""What a child process may see of our environment (:func:`mlcicd.process.child_environment`)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

import mlcicd.process
from mlcicd.process import (
    AWS_CREDENTIALS,
    CHILD_SETTINGS,
    child_environment,
    run_streaming,
    share_cores,
)
from mlcicd.project import Project

SRC = Path(__file__).resolve().parents[1] / "src" / "mlcicd"
# Read by the orchestrator Lambdas from the function's environment, which the stack sets:
# never in the environment of a process mlcicd starts.
LAMBDA_SETTINGS = SRC / "aws" / "names.py"
# Withheld on purpose (secrets, or meant for one child only and set by its parent).
WITHHELD = {
    "MLCICD_TOKEN",
    "MLCICD_WEBHOOK_SECRET",
    "MLCICD_SERVICE_PID",
    "MLCICD_ENDPOINT_URL",  # set by the staging stage for its endpoint tests alone
    "MLCICD_ENDPOINT_NAME",
    "MLCICD_API_KEY",  # `mlcicd invoke --via-api`'s key for the stack's API: a secret
    "MLCICD_NOTIFY_BACKOFF",  # read by the service process alone (daemon/notifier.py)
    "MLCICD_SPEC",  # what the staging test project's build spec installs; mlcicd never reads it
}

SECRETS = {
    "MLCICD_TOKEN": "api-token",
    "MLCICD_WEBHOOK_SECRET": "hook-secret",
    "MLCICD_NEW_PASSWORD": "p",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_SESSION_TOKEN": "session",
}
SETTINGS = {
    "PATH": "/usr/bin",
    "HOME": "/home/ada",
    "AWS_REGION": "eu-west-1",
    "AWS_PROFILE": "dev",
    "MLCICD_CACHE": "/cache",
    "MLCICD_BATCHING": "0",
    "PIP_INDEX_URL": "https://pypi.example",
}


def test_secrets_are_dropped_and_settings_kept() -> None:
    env = child_environment({**SECRETS, **SETTINGS})
    assert env == SETTINGS


def test_aws_credentials_only_when_asked_for() -> None:
    env = child_environment({**SECRETS, **SETTINGS}, aws=True)
    aws = {k: v for k, v in SECRETS.items() if k.startswith("AWS_")}
    assert env == {**SETTINGS, **aws}  # still no MLCICD_ secret


def test_the_configured_webhook_secret_is_withheld_whatever_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mlcicd.yaml").write_text(
        "pipeline: p\nservice: {webhook_secret_env: GH_HOOK_KEY}\n"
    )
    monkeypatch.setenv("GH_HOOK_KEY", "hook-secret")
    # What this process withholds is process-wide: start from none, and leave none behind for
    # the worker's next tests (nor fail when run again in the same process).
    monkeypatch.setattr(mlcicd.process, "_withheld", set())
    assert child_environment()["GH_HOOK_KEY"] == "hook-secret"  # nobody has read the config yet
    assert Project(tmp_path).config.service.webhook_secret_env == "GH_HOOK_KEY"
    assert "GH_HOOK_KEY" not in child_environment()
    assert "GH_HOOK_KEY" not in child_environment(aws=True)


def test_a_child_started_with_it_sees_none_of_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    lines: list[str] = []
    code = "import os; print(' '.join(sorted(os.environ)))"
    outcome = run_streaming(
        [sys.executable, "-c", code], cwd=tmp_path, env=child_environment(), on_line=lines.append
    )
    assert outcome.exit_code == 0, lines
    seen = set(lines[-1].split())
    assert not seen & set(SECRETS)
    assert {"PATH", "MLCICD_FASTPATH"} <= seen


def test_every_mlcicd_variable_in_the_source_is_classified() -> None:
    """A new MLCICD_* setting that a child reads must be listed in CHILD_SETTINGS, or the
    child silently loses it; a new secret must not be. Either way, decide here."""
    names: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        if path != LAMBDA_SETTINGS:
            for name in re.findall(
                r"[\"'](MLCICD_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")
            ):
                names.setdefault(name, set()).add(str(path.relative_to(SRC)))
    unclassified = {n: sorted(p) for n, p in names.items() if n not in CHILD_SETTINGS | WITHHELD}
    assert not unclassified, (
        f"{unclassified}: add each to mlcicd.process.CHILD_SETTINGS if a child process reads it "
        "and it is no secret, else to WITHHELD in this test"
    )
    assert not CHILD_SETTINGS & WITHHELD


def test_credentials_are_not_settings() -> None:
    assert not {n for n in CHILD_SETTINGS if re.search("TOKEN|SECRET|PASSWORD|KEY", n)}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} <= AWS_CREDENTIALS


def test_worker_thread_pools_share_the_cores_unless_the_environment_sizes_them() -> None:
    cores = os.cpu_count() or 1
    shared = share_cores({"OMP_NUM_THREADS": "3", "PATH": "/bin"}, 2 * cores)
    assert shared == {
        "OMP_NUM_THREADS": "3",  # the user's own setting stands
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PATH": "/bin",
    }
    assert share_cores({}, 1)["MKL_NUM_THREADS"] == str(cores)
