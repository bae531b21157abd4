"""Isolated Python environments for builds, training jobs and endpoints, cached by content.

An environment holds the project's ``requirements.txt``, its test requirements, and the
serving runtime mlcicd's endpoint needs (uvicorn, httptools, uvloop, orjson, numpy — pinned to the
versions mlcicd itself runs with), plus a path entry that makes the ``mlcicd`` package
importable without installing it. Its key is the sha256 of all of that, the Python
version and where this mlcicd is installed, so a second build with the same requirements
reuses it in milliseconds.

Environments are built in place under a lock and marked complete last: an interrupted
build is found incomplete and rebuilt, never used half-made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import mlcicd
from mlcicd.config import Config
from mlcicd.errors import BuildError
from mlcicd.fsutil import locked
from mlcicd.process import child_environment, run_streaming

RUNTIME_PACKAGES = ("uvicorn", "httptools", "orjson", "uvloop")
COMPLETE_MARKER = ".mlcicd-complete"


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    cached: bool

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def env_vars(self) -> dict[str, str]:
        """Process environment that puts this environment first on PATH."""
        return venv_environment(self.path)


def venv_environment(path: Path) -> dict[str, str]:
    """The environment of a child that runs the project's code in the environment at ``path``
    (its tests, its inference code): first on PATH, without this process's Python variables
    or secrets (:func:`~mlcicd.process.child_environment`)."""
    env = {
        k: v
        for k, v in child_environment().items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PATH"] = f"{path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(path)
    return env


def runtime_requirements() -> list[str]:
    """The serving runtime, pinned to what this mlcicd runs with (so endpoints behave alike)."""
    return [*_pinned(tuple(RUNTIME_PACKAGES)), "numpy"]


def aws_requirements() -> list[str]:
    """boto3, pinned to what this mlcicd runs with: for endpoint workers that write to S3."""
    try:
        return [f"boto3=={metadata.version('boto3')}"]
    except metadata.PackageNotFoundError:
        return ["boto3"]


def explain_requirements(online: bool = False) -> list[str]:
    """shap, pinned to what this mlcicd runs with: the register stage explains a model in its
    build environment, where the model's classes unpickle (docs/explain.md); and jmespath
    when the endpoint's workers evaluate Clarify's ``EnableExplanations`` there."""
    return _pinned(("shap", "jmespath") if online else ("shap",))


def _pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` as installed beside this mlcicd, else the bare name."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def environment_extras(config: Config) -> tuple[str, ...]:
    """What the environment holds besides requirements.txt: the test requirements, boto3
    when the local endpoint's workers write their data capture to an S3 store themselves or
    when the endpoint tests call a SageMaker staging endpoint (signed requests only), and
    shap when the register stage explains the model there (``explain:``)."""
    deploy, store = config.deploy, config.store.uri or ""
    extras = config.build.test_requirements
    captures = deploy.data_capture.enabled and store.startswith("s3://")
    staged = deploy.backend == "sagemaker" and config.staging is not None and config.staging.test
    if (deploy.backend == "local" and captures) or staged:
        extras = (*extras, *aws_requirements())
    if config.explain is not None:
        extras = (*extras, *explain_requirements(config.explain.online))
    return extras


def environment_key(requirements: str, extra: tuple[str, ...]) -> str:
    spec = {
        "python": sys.version,
        "requirements": requirements,
        "extra": sorted(extra),
        "runtime": runtime_requirements(),
        "mlcicd": mlcicd.__version__,
        # The environment links to this installation's package (_link_mlcicd): another
        # checkout or venv of the same version gets its own, never a link to code elsewhere
        # (stale if that checkout moved on, broken once it is removed).
        "package": str(_package_dir()),
        "layout": 2,  # 2: bytecode compiled at install
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _uv() -> str:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise BuildError(
                "uv is not installed", hint="reinstall mlcicd: `pip install mlcicd`"
            ) from None
        return found


def ensure_environment(
    requirements_file: Path,
    extra: tuple[str, ...],
    cache_root: Path,
    *,
    log: Callable[[str], None],
    timeout: float = 1800,
) -> Environment:
    """The environment for these requirements, built now if it does not exist yet."""
    if not requirements_file.is_file():
        raise BuildError(
            f"requirements file {requirements_file.name} is not in the commit",
            hint="commit it, or point build.requirements at the right file",
        )
    requirements = requirements_file.read_text(encoding="utf-8")
    key = environment_key(requirements, extra)
    path = cache_root / "envs" / key[:24]
    if (path / COMPLETE_MARKER).exists():
        return Environment(key=key, path=path, cached=True)
    with locked(cache_root / "envs" / f"{key[:24]}.lock"):
        if (path / COMPLETE_MARKER).exists():  # built by another process while we waited
            return Environment(key=key, path=path, cached=True)
        if path.exists():
            log(f"removing an incomplete environment at {path}")
            shutil.rmtree(path)
        _build(path, requirements_file, extra, log=log, timeout=timeout)
        (path / COMPLETE_MARKER).write_text(json.dumps({"key": key, "requirements": requirements}))
    return Environment(key=key, path=path, cached=False)


def _run(cmd: list[str], *, log: Callable[[str], None], timeout: float, what: str) -> None:
    log("$ " + " ".join(cmd))
    # Installing runs the packages' own build code: it gets no secrets either.
    outcome = run_streaming(
        cmd, cwd=Path.cwd(), env=child_environment(), on_line=log, max_runtime_seconds=timeout
    )
    if outcome.timed_out:
        raise BuildError(f"{what} took longer than build.timeout ({timeout:g}s)")
    if outcome.exit_code != 0:
        last = outcome.tail[-1] if outcome.tail else ""
        raise BuildError(f"{what} failed (exit {outcome.exit_code}): {last}".rstrip(": "))


def _build(
    path: Path,
    requirements_file: Path,
    extra: tuple[str, ...],
    *,
    log: Callable[[str], None],
    timeout: float,
) -> None:
    uv = _uv()
    try:
        _run(
            [uv, "venv", "--quiet", "--python", sys.executable, str(path)],
            log=log,
            timeout=timeout,
            what="creating the environment",
        )
        python = str(path / "bin" / "python")
        _run(
            # Bytecode compiled once, here: every training job, test run and endpoint worker
            # imports from this environment, and with PYTHONDONTWRITEBYTECODE set (as on many CI
            # machines) each of them would otherwise recompile scikit-learn on every start.
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",
                "--python",
                python,
                "-r",
                str(requirements_file),
                *extra,
                *runtime_requirements(),
            ],
            log=log,
            timeout=timeout,
            what=f"installing {requirements_file.name}",
        )
        _link_mlcicd(path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _package_dir() -> Path:
    """This installation's ``mlcicd`` package directory, which environments link to."""
    return Path(mlcicd.__file__).resolve().parent


def _link_mlcicd(env: Path) -> None:
    """Make ``import mlcicd`` work in ``env`` without installing mlcicd's CLI dependencies.

    A directory holding only a link to this package goes on the environment's path, so the
    endpoint workers import the very code the CLI runs — and nothing else of ours leaks in.
    """
    runtime = env / "mlcicd-runtime"
    runtime.mkdir(exist_ok=True)
    (runtime / "mlcicd").symlink_to(_package_dir(), target_is_directory=True)
    purelib = subprocess.run(
        [
            str(env / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=child_environment(),  # its .pth files run code
    ).stdout.strip()
    Path(purelib, "mlcicd-runtime.pth").write_text(str(runtime) + "\n")
