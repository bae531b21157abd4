"""The ``train`` program of a SageMaker training image: ``python -m mlcicd.training.container``.

SageMaker starts a training image with the argument ``train`` and ``/opt/ml`` already laid
out. This does what sagemaker-training-toolkit's ``train`` does for a script-mode job,
through the same builders the local runner uses (:mod:`mlcicd.training.toolkit`):

1. read ``input/config/*.json`` and build the ``SM_*`` environment;
2. find the code: when the job names it by an ``s3://`` URI (the ``sagemaker_submit_directory``
   hyperparameter, else ``SAGEMAKER_SUBMIT_DIRECTORY``) and ``code/`` is missing or empty,
   download that ``sourcedir.tar.gz`` and extract it (safely) into ``code/`` — the toolkit's
   ``files.download_and_extract`` (:mod:`mlcicd.aws.sourcedir`) — and run from there (a
   network-isolated job names the archive in its ``code`` channel instead: extracted alike);
   otherwise from ``SAGEMAKER_SUBMIT_DIRECTORY`` if that is a local directory (code baked
   into the image), else from ``code/``. The program is ``SAGEMAKER_PROGRAM`` (or the
   ``sagemaker_program`` hyperparameter);
3. run it with the hyperparameters as arguments, its output passed through to stdout
   (which SageMaker sends to CloudWatch, where MetricDefinitions are applied);
4. on failure write ``output/failure`` unless the script did, and exit non-zero; on
   success write ``output/success``. SIGTERM (StopTrainingJob) is passed on to the script's
   process group, which gets SageMaker's grace period before SIGKILL.

The base directory is ``/opt/ml`` unless ``--base-dir``, ``SM_BASE_DIR`` or the toolkit's
``SAGEMAKER_BASE_DIR`` says otherwise (for tests and for running an image's tree by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from mlcicd.aws.sourcedir import download_and_extract, is_archive_path, is_s3_uri
from mlcicd.errors import MlcicdError, TrainingError
from mlcicd.process import run_streaming
from mlcicd.shapes import decode_hyperparameters
from mlcicd.training.toolkit import (
    DEFAULT_HOST,
    TrainingPaths,
    algorithm_error_reason,
    hyperparameter_args,
    missing_model_reason,
    resource_config,
    script_mode_env,
)

DEFAULT_BASE_DIR = Path("/opt/ml")
# SageMaker sends SIGTERM, then SIGKILL 120 s later; leave the script most of that.
STOP_GRACE_SECONDS = 110.0
SUBMIT_DIRECTORY_HP = "sagemaker_submit_directory"


class _Stopped(BaseException):
    """SIGTERM arrived: the job is being stopped."""


def _read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _num_gpus() -> int:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--list-gpus"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def _code_dir(
    paths: TrainingPaths, environ: Mapping[str, str], hyperparameters: Mapping[str, Any]
) -> Path:
    submit_dir = environ.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    uri = str(hyperparameters.get(SUBMIT_DIRECTORY_HP) or submit_dir)
    if is_s3_uri(uri) or is_archive_path(uri):
        region = hyperparameters.get("sagemaker_region")
        if download_and_extract(uri, paths.code, region=str(region) if region else None):
            print(f"code {uri} extracted into {paths.code}", file=sys.stderr)
            return paths.code
    if submit_dir and Path(submit_dir).is_dir():
        return Path(submit_dir)
    return paths.code  # the code the image (or an earlier download) put there


def _write_failure(paths: TrainingPaths, reason: str) -> None:
    """Like the toolkit: the script's own failure file, if it wrote one, is kept."""
    paths.output.mkdir(parents=True, exist_ok=True)
    if not paths.failure_file.exists():
        paths.failure_file.write_text(reason + "\n", encoding="utf-8")


def _prepare(
    paths: TrainingPaths, environ: Mapping[str, str]
) -> tuple[list[str], Path, dict[str, str]]:
    """The command, its working directory and its environment."""
    hyperparameters = decode_hyperparameters(_read_json(paths.hyperparameters_file, {}))
    resources = _read_json(paths.resource_config_file, resource_config("local", host=DEFAULT_HOST))
    data_config = _read_json(paths.input_data_config_file, {})
    program = environ.get("SAGEMAKER_PROGRAM") or hyperparameters.get("sagemaker_program")
    if not program:
        raise TrainingError(
            "no training program: SAGEMAKER_PROGRAM is not set",
            hint="set it in the image (ENV SAGEMAKER_PROGRAM=train.py) or as the "
            "sagemaker_program hyperparameter",
        )
    code_dir = _code_dir(paths, environ, hyperparameters)
    script = code_dir / str(program)
    if not script.is_file():
        raise TrainingError(f"training program {program!r} not found: looked for {script}")
    env = script_mode_env(
        paths,
        environ,
        code_dir=code_dir,
        hyperparameters=hyperparameters,
        resource_config=resources,
        input_data_config=data_config,
        num_cpus=os.cpu_count() or 1,
        num_gpus=_num_gpus(),
    )
    return [sys.executable, str(program), *hyperparameter_args(hyperparameters)], code_dir, env


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def train(paths: TrainingPaths, environ: Mapping[str, str]) -> int:
    """Run the job in ``paths``; return the exit code for the container."""
    try:
        cmd, code_dir, env = _prepare(paths, environ)
    except (MlcicdError, OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"ClientError: {exc}"
        print(reason, file=sys.stderr)
        _write_failure(paths, reason)
        return 1

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        outcome = run_streaming(
            cmd, cwd=code_dir, env=env, on_line=_print_line, stop_grace_seconds=STOP_GRACE_SECONDS
        )
    except _Stopped:
        print("the training job was stopped (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:  # None also when the old handler was not set from Python
            signal.signal(signal.SIGTERM, previous)

    if outcome.exit_code != 0:
        _write_failure(paths, algorithm_error_reason(outcome.exit_code, outcome.tail))
        return outcome.exit_code if 0 < outcome.exit_code < 256 else 1
    missing_model = missing_model_reason(paths.model)
    if missing_model is not None:
        print(missing_model, file=sys.stderr)
        _write_failure(paths, missing_model)
        return 1
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.success_file.touch()
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlcicd.training.container",
        description="Run a SageMaker script-mode training job inside a training container.",
    )
    parser.add_argument("command", nargs="?", choices=["train"], help="what SageMaker passes")
    parser.add_argument("--base-dir", type=Path, help="instead of /opt/ml (also: $SM_BASE_DIR)")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    base = args.base_dir or Path(
        environ.get("SM_BASE_DIR") or environ.get("SAGEMAKER_BASE_DIR") or DEFAULT_BASE_DIR
    )
    return train(TrainingPaths(base.absolute()), environ)


if __name__ == "__main__":
    sys.exit(main())
