"""Where `mlcicd init` finds its template: the installed package's copy, then the source tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd import templates
from tests.conftest import IRIS


def test_a_source_checkout_reads_examples() -> None:
    assert templates.find_template() == IRIS


def test_the_installed_copy_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "iris").mkdir()
    (tmp_path / "iris" / "mlcicd.yaml").write_text("pipeline: packaged\n")
    monkeypatch.setattr(templates, "PACKAGED", tmp_path)
    assert templates.find_template() == tmp_path / "iris"


def test_an_unknown_template_is_none() -> None:
    assert templates.find_template("no-such-template") is None


def test_ignore_skips_state_caches_and_virtual_environments(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    names = [".mlcicd", "__pycache__", "x.pyc", ".venv", ".git", "env", "src", "train.py", "data"]
    assert templates.ignore(str(tmp_path), names) == {
        ".mlcicd",
        "__pycache__",
        "x.pyc",
        ".venv",
        ".git",
        "env",
    }
