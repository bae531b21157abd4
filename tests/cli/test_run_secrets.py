"""`mlcicd run` keeps its secrets and its files to itself: the project's tests, its training
script and its endpoint workers — real processes, started by one real run of the iris
project — see none of the service's secrets, and the logs and captured requests the run
leaves are readable by their owner only."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all, make_repo, stop_endpoints
from tests.helpers import mlcicd, set_yaml, wait_for

pytestmark = pytest.mark.integration

SECRETS = {
    "MLCICD_TOKEN": "the-api-token",
    "MLCICD_WEBHOOK_SECRET": "the-default-webhook-secret",
    "IRIS_HOOK_SECRET": "the-configured-webhook-secret",  # service.webhook_secret_env below
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "the-aws-secret",
    "AWS_SESSION_TOKEN": "the-aws-session",
}
SETTINGS = {"MLCICD_BATCHING": "1", "AWS_REGION": "eu-west-1"}  # a child may see these

# Imported by train.py, inference.py and the project's tests: each process that imports it
# leaves the names in its environment and its command line.
DUMP = """
import json, os, sys
with open(os.path.join({dump!r}, f"{{os.getpid()}}.json"), "w") as f:
    json.dump({{"argv": sys.argv, "env": sorted(os.environ)}}, f)
"""


@dataclass
class Run:
    project: Path
    seen: list[dict[str, Any]]  # one per process that imported envdump


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("secrets")
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--no-such-option"\n'
    )
    project = make_repo(root / "iris")
    dump = root / "dumps"
    dump.mkdir()
    (project / "src" / "envdump.py").write_text(DUMP.format(dump=str(dump)))
    for script in ("train.py", "inference.py"):
        path = project / "src" / script
        path.write_text(
            path.read_text().replace(
                "import os\n", "import os\n\nimport envdump  # noqa: F401\n", 1
            )
        )
    (project / "tests" / "test_envdump.py").write_text(
        "import envdump  # noqa: F401\n\n\ndef test_ok():\n    pass\n"
    )
    set_yaml(project, "deploy:\n", "service:\n  webhook_secret_env: IRIS_HOOK_SECRET\n\ndeploy:\n")
    set_yaml(project, "  workers: 2\n", "  workers: 2\n  data_capture: {enabled: true}\n")
    commit_all(project, "dump the environment, capture the requests")
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {**SECRETS, **SETTINGS}.items():
                mp.setenv(name, value)
            result = mlcicd(project, "run")
            assert result.exit_code == 0, result.output
        yield Run(project, [json.loads(p.read_text()) for p in dump.glob("*.json")])
    finally:
        stop_endpoints(project)


def test_no_secret_reaches_the_tests_the_training_script_or_the_endpoint(run: Run) -> None:
    leaked = {Path(s["argv"][0]).name: set(SECRETS) & set(s["env"]) for s in run.seen}
    assert not any(leaked.values()), leaked
    kinds = {
        "the project's tests": [s for s in run.seen if "pytest" in " ".join(s["argv"])],
        "the training job": [
            s for s in run.seen if "SM_MODEL_DIR" in s["env"] and "TRAINING_JOB_NAME" in s["env"]
        ],
        "an endpoint worker": [s for s in run.seen if s["argv"][0].endswith("worker.py")],
    }
    for kind, found in kinds.items():
        assert found, f"no dump from {kind}: {[s['argv'] for s in run.seen]}"
        assert all(set(SETTINGS) <= set(s["env"]) for s in found), kind
    assert all("SAGEMAKER_PROGRAM" in s["env"] for s in kinds["an endpoint worker"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_directory_logs_and_captured_requests_are_the_owners_alone(run: Run) -> None:
    state = run.project / ".mlcicd"
    assert mode(state) == 0o700
    logs = [p for p in state.rglob("*.log") if p.is_file()]
    for folder in (
        "codebuild",
        "codepipeline",
        "TrainingJobs",
        "jobs",
        "endpoints",
    ):  # a log of each kind
        assert any(folder in p.relative_to(state).parts for p in logs), (folder, logs)
    assert {str(p.relative_to(state)): oct(mode(p)) for p in logs if mode(p) != 0o600} == {}
    # The deploy stage sent its sample request: the workers capture it within a second or so.
    captured = wait_for(
        "captured records",
        lambda: [p for p in (state / "artifacts").rglob("*.jsonl") if "data-capture" in p.parts],
        timeout=30,
    )
    assert {str(p.relative_to(state)): oct(mode(p)) for p in captured if mode(p) != 0o600} == {}
    database = state / "state.db"
    assert [oct(mode(p)) for p in (database, state / "state.db-wal")] == ["0o600", "0o600"]
