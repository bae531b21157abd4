"""The serving processes run under the model's interpreter: keep their imports to what it has."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # fresh interpreters

ALLOWED_THIRD_PARTY = {"numpy", "orjson", "uvicorn", "httptools", "h11", "uvloop", "mlcicd"}
OURS_ALLOWED = {
    "mlcicd",
    "mlcicd.errors",
    "mlcicd.fsutil",
    "mlcicd.archive",
    "mlcicd.procinfo",
    "mlcicd.process",
}
# Data capture writes through the artifact store; boto3 is imported only by an S3 capture.
WORKER_ALLOWED = {
    *OURS_ALLOWED,
    "mlcicd.store",
    "mlcicd.store.base",
    "mlcicd.store.local",
    "mlcicd.store.s3",
    # The model compiler behind the default predict_fn: numpy only (scikit-learn, forest and
    # boosting are imported when a model is loaded).
    "mlcicd.compiler",
    "mlcicd.compiler.base",
    "mlcicd.compiler.linear",
    "mlcicd.compiler.verify",
    # SageMaker's shapes (stdlib only): Clarify's record limit for online explanations.
    "mlcicd.shapes",
}


def imported_after(baseline: str, target: str) -> set[str]:
    code = f"""
import json, sys
{baseline}
before = set(sys.modules)
{target}
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(json.loads(out))


def test_worker_imports_no_cli_dependency() -> None:
    # uvicorn itself imports click; what our modules add on top of it must be allowed.
    new = imported_after("import uvicorn", "import mlcicd.serving.worker, mlcicd.serving.container")
    tops = {name.split(".")[0] for name in new} - set(sys.stdlib_module_names)
    # httptools is compiled with Cython: its runtime's bookkeeping modules come with it.
    tops = {t for t in tops if t != "cython_runtime" and not t.startswith("_cython")}
    assert tops <= ALLOWED_THIRD_PARTY, tops - ALLOWED_THIRD_PARTY
    ours = {n for n in new if n.startswith("mlcicd")}
    assert {n for n in ours if not n.startswith("mlcicd.serving")} <= WORKER_ALLOWED
    assert not {n for n in new if n.split(".")[0] in {"click", "yaml", "boto3", "botocore"}}


def test_supervisor_is_light() -> None:
    new = imported_after("", "import mlcicd.serving.supervisor")
    tops = {name.split(".")[0] for name in new} - set(sys.stdlib_module_names)
    assert tops == {"mlcicd"}  # no numpy, uvicorn, click or yaml: it starts fast and forks safely
    assert {
        n for n in new if n.startswith("mlcicd") and not n.startswith("mlcicd.serving")
    } <= OURS_ALLOWED


def test_no_yaml_anywhere() -> None:
    code = """
import sys
import mlcicd.serving.worker, mlcicd.serving.supervisor, mlcicd.serving.container
print('yaml' in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "False"
