"""`mlcicd run` keeps its secrets: the project's tests, its training script and its endpoint
workers — real processes, started by a real run of the iris project — see none of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_run import mlcicd, set_yaml
from tests.conftest import commit_all

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


def test_no_secret_reaches_the_tests_the_training_script_or_the_endpoint(
    iris_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "dumps"
    dump.mkdir()
    (iris_project / "src" / "envdump.py").write_text(DUMP.format(dump=str(dump)))
    for script in ("train.py", "inference.py"):
        path = iris_project / "src" / script
        path.write_text(path.read_text().replace("import os\n", "import os\n\nimport envdump  # noqa: F401\n", 1))
    (iris_project / "tests" / "test_envdump.py").write_text("import envdump  # noqa: F401\n\n\ndef test_ok():\n    pass\n")
    set_yaml(iris_project, "deploy:\n", "service:\n  webhook_secret_env: IRIS_HOOK_SECRET\n\ndeploy:\n")
    commit_all(iris_project, "dump the environment")
    for name, value in {**SECRETS, **SETTINGS}.items():
        monkeypatch.setenv(name, value)

    result = mlcicd(iris_project, "run")
    assert result.exit_code == 0, result.output

    seen = [json.loads(p.read_text()) for p in dump.glob("*.json")]
    leaked = {Path(s["argv"][0]).name: set(SECRETS) & set(s["env"]) for s in seen}
    assert not any(leaked.values()), leaked
    kinds = {
        "the project's tests": [s for s in seen if "pytest" in " ".join(s["argv"])],
        "the training job": [s for s in seen if "SM_MODEL_DIR" in s["env"] and "TRAINING_JOB_NAME" in s["env"]],
        "an endpoint worker": [s for s in seen if s["argv"][0].endswith("worker.py")],
    }
    for kind, found in kinds.items():
        assert found, f"no dump from {kind}: {[s['argv'] for s in seen]}"
        assert all(set(SETTINGS) <= set(s["env"]) for s in found), kind
    assert all("SAGEMAKER_PROGRAM" in s["env"] for s in kinds["an endpoint worker"])
