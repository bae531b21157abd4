"""`mlcicd aws package`: a reproducible zip from which the handlers import with nothing else
but the standard library (Lambda's runtime adds boto3)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcicd.aws.package import build_lambda_package
from mlcicd.aws.template.pipeline import DEPLOY_HANDLER, TRAINING_HANDLER
from mlcicd.cli import cli


def test_the_package_holds_mlcicd_and_pure_python_yaml(tmp_path: Path) -> None:
    package = build_lambda_package(tmp_path / "lambdas.zip")
    with zipfile.ZipFile(package.path) as archive:
        names = archive.namelist()
    assert "mlcicd/aws/lambdas/training.py" in names and "mlcicd/py.typed" in names
    assert "yaml/__init__.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith(("boto3/", "botocore/"))]
    assert names == sorted(names) and package.files == len(names)
    assert package.key == f"mlcicd/lambdas-{package.sha256[:16]}.zip"


def test_only_what_the_handlers_import_goes_in(tmp_path: Path) -> None:
    """The pipeline's stages, the CLI, the service and the endpoint's request path are not the
    Lambdas' code (the import test below proves nothing they need is left out)."""
    package = build_lambda_package(tmp_path / "lambdas.zip")
    with zipfile.ZipFile(package.path) as archive:
        names = set(archive.namelist())
    assert {"mlcicd/__init__.py", "mlcicd/thresholds.py", "mlcicd/aws/__init__.py"} <= names
    assert "mlcicd/aws/lambdas/deploy.py" in names and "mlcicd/aws/lambdas/staging.py" in names
    for left_out in ("stages/", "cli/", "daemon/", "web/", "compiler/", "serving/app.py"):
        assert not [n for n in names if n.startswith(f"mlcicd/{left_out}")], left_out


def test_the_same_code_makes_the_same_bytes(tmp_path: Path) -> None:
    assert (
        build_lambda_package(tmp_path / "a.zip").sha256
        == build_lambda_package(tmp_path / "b.zip").sha256
    )


@pytest.mark.integration
def test_the_handlers_import_from_the_package_alone(tmp_path: Path) -> None:
    package = build_lambda_package(tmp_path / "lambdas.zip")
    root = tmp_path / "task"
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(root)
    modules = [h.rsplit(".", 1)[0] for h in (TRAINING_HANDLER, DEPLOY_HANDLER)]
    script = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1]); "
        "[importlib.import_module(m).handler for m in sys.argv[2:]]; "
        "import yaml, mlcicd; assert yaml.__file__.startswith(sys.argv[1]) "
        "and mlcicd.__file__.startswith(sys.argv[1]); "
        "assert 'boto3' not in sys.modules, 'boto3 is imported lazily'"
    )
    # -S: no site-packages, so nothing is found outside the package and the standard library.
    done = subprocess.run(
        [sys.executable, "-S", "-c", script, str(root), *modules],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_the_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["aws", "package", "--output", str(tmp_path / "l.zip"), "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["path"] == str(tmp_path / "l.zip") and len(shown["sha256"]) == 64
