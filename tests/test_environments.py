"""Build environments: real `uv` installs into a per-test cache."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlcicd.environments import COMPLETE_MARKER, ensure_environment
from mlcicd.errors import BuildError

pytestmark = pytest.mark.integration


def test_environment_is_built_once_with_bytecode_and_mlcicd_importable(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    lines: list[str] = []
    env = ensure_environment(requirements, (), tmp_path / "cache", log=lines.append)
    assert not env.cached and (env.path / COMPLETE_MARKER).exists()
    # Compiled at install: starts stay fast even where PYTHONDONTWRITEBYTECODE is set.
    assert list(env.path.glob("lib/python*/site-packages/__pycache__/six*.pyc"))
    out = subprocess.run(
        [str(env.python), "-c", "import six, mlcicd.serving.codecs, uvicorn, orjson; print('ok')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "ok"
    again = ensure_environment(requirements, (), tmp_path / "cache", log=lines.append)
    assert again.cached and again.path == env.path


def test_an_interrupted_build_is_rebuilt_not_used(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    env = ensure_environment(requirements, (), tmp_path / "cache", log=lambda _: None)
    (env.path / COMPLETE_MARKER).unlink()  # as if the build had been killed before its end
    lines: list[str] = []
    rebuilt = ensure_environment(requirements, (), tmp_path / "cache", log=lines.append)
    assert not rebuilt.cached
    assert any("incomplete environment" in line for line in lines)


def test_unknown_package_fails_with_the_installer_message(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this-package-does-not-exist-mlcicd==0.0.1\n")
    with pytest.raises(BuildError, match=r"installing requirements\.txt failed"):
        ensure_environment(requirements, (), tmp_path / "cache", log=lambda _: None)
    assert not any((tmp_path / "cache" / "envs").glob("*/bin"))  # nothing half-made is left


def test_missing_requirements_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        BuildError, match=r"requirements file requirements\.txt is not in the commit"
    ):
        ensure_environment(
            tmp_path / "requirements.txt", (), tmp_path / "cache", log=lambda _: None
        )


def test_another_installation_of_the_same_version_gets_its_own_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An environment links to the package of the mlcicd that made it: a second checkout (or
    venv) must not reuse it, or its endpoints would run the first checkout's code — and fail
    with "No module named mlcicd" once that checkout is removed."""
    import mlcicd
    from mlcicd.environments import environment_key

    here = environment_key("six\n", ())
    other = tmp_path / "other-checkout" / "src" / "mlcicd"
    other.mkdir(parents=True)
    monkeypatch.setattr(mlcicd, "__file__", str(other / "__init__.py"))
    assert environment_key("six\n", ()) != here


def test_explained_models_get_shap_and_online_explanations_jmespath_too() -> None:
    """The workers evaluate Clarify's EnableExplanations with jmespath, in the model's
    environment: pinned beside shap only when the endpoint explains online."""
    from mlcicd.config import parse_config
    from mlcicd.environments import environment_extras

    def extras(section: str) -> set[str]:
        names = {e.partition("==")[0] for e in environment_extras(parse_config(section))}
        return names & {"shap", "jmespath"}

    assert extras("pipeline: p\n") == set()
    assert extras("pipeline: p\nexplain: {rows: 5}\n") == {"shap"}
    assert extras("pipeline: p\nexplain: {online: true}\n") == {"shap", "jmespath"}
