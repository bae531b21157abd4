"""The container training backend (``train.backend: container``): a training job run inside
the project's image with podman, as SageMaker runs it.

Not to be confused with :mod:`mlcicd.training.container`, which is the ``train`` program
*inside* the image: this module is the host side that starts the image with ``train``.

The job directory is laid out exactly as by the local backend (same description.json,
logs/training.log, metrics by regex, output/failure, model.tar.gz — :class:`LocalTrainingBackend`
does all of that); only the running differs:

- ``input/``, ``model/``, ``output/``, ``code/`` and ``checkpoints/`` are bind-mounted at
  ``/opt/ml/…`` as SageMaker lays them out, and the image is run with the argument ``train``:
  the image's own entry builds the ``SM_*`` environment from ``input/config/*.json`` inside;
- the job's code is the one copied into ``code/`` (the SageMaker SDK's script mode:
  ``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/code``), so ``train.source_dir`` and
  ``train.entry_point`` mean what they mean locally;
- ``max_runtime`` is ``podman stop``: SIGTERM to the entry, SIGKILL after the grace period;
  on Ctrl-C or any error the container is removed;
- the container is ``mlcicd-train-<job>-<root id>``: container names are machine-wide, and two
  checkouts may run the same job name at once;
- the image's id (``sha256:…``) is recorded as ``AlgorithmSpecification.TrainingImage``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from mlcicd.errors import TrainingError
from mlcicd.fsutil import atomic_write_json
from mlcicd.images.podman import (
    image_id,
    missing_entry,
    podman,
    podman_binary,
    remove_container,
    root_id,
)
from mlcicd.process import ProcessOutcome, child_environment, run_streaming
from mlcicd.shapes import encode_hyperparameters
from mlcicd.store.base import ArtifactStore
from mlcicd.training.local import LocalTrainingBackend, _Job

OPT_ML = "/opt/ml"
# The directories of the job that SageMaker mounts (the rest of the job dir is ours).
MOUNTED = ("input", "model", "output", "code", "checkpoints")


class PodmanTrainingBackend(LocalTrainingBackend):
    """Runs training jobs in ``image`` with podman, one directory per job under ``jobs_root``."""

    TYPE: ClassVar[str] = "container"

    def __init__(
        self,
        jobs_root: Path,
        image: str,
        *,
        stop_grace_seconds: float = 5.0,
        store: ArtifactStore | None = None,
    ) -> None:
        super().__init__(jobs_root, stop_grace_seconds=stop_grace_seconds, store=store)
        podman_binary(TrainingError)  # no podman: say so before any job directory is made
        self.image = image
        self.image_id = image_id(image, error=TrainingError)
        self.root_id = root_id(self.jobs_root)

    def container_name(self, job_name: str) -> str:
        """The job's container: its name and its jobs root's id (two checkouts running the
        same job name at once each get their own)."""
        return f"mlcicd-train-{job_name}-{self.root_id}"

    def _prepare(self, job: _Job) -> dict[str, str]:
        super()._prepare(job)  # the layout, the code, the channels, input/config/*.json
        # Paths as the container sees them.
        hyperparameters = dict(job.hyperparameters)
        hyperparameters["sagemaker_submit_directory"] = encode_hyperparameters(
            {"v": f"{OPT_ML}/code"}
        )["v"]
        job.hyperparameters = hyperparameters
        atomic_write_json(job.paths.hyperparameters_file, hyperparameters)
        job.training_image = f"{self.image}@{self.image_id}"
        env = {
            **job.spec.environment,
            "SAGEMAKER_PROGRAM": job.spec.entry_point,
            "SAGEMAKER_SUBMIT_DIRECTORY": f"{OPT_ML}/code",
            "TRAINING_JOB_NAME": job.spec.name,
        }
        mounts = [
            arg
            for name in MOUNTED
            for arg in ("--volume", f"{job.paths.base / name}:{OPT_ML}/{name}")
        ]
        (job.paths.base / "checkpoints").mkdir(exist_ok=True)
        job.command = [
            podman_binary(TrainingError),
            "run",
            "--rm",
            "--name",
            self.container_name(job.spec.name),
            "--network",
            "none",
            *mounts,
            # NAME alone: podman takes the value from its own environment (not on its command line).
            *[arg for key in sorted(env) for arg in ("--env", key)],
            self.image_id,
            "train",
        ]
        # podman's own environment, from which --env NAME takes the values: without mlcicd's
        # secrets and AWS credentials (the job's data and model are mounted files).
        return {**child_environment(), **env}

    def _run(
        self, job: _Job, env: dict[str, str], on_line: Callable[[str], None]
    ) -> ProcessOutcome:
        """``podman run``, with the deadline enforced on the container: killing the podman
        client alone would leave the container running."""
        name = self.container_name(job.spec.name)
        stopped = threading.Event()

        def stop_at_deadline() -> None:
            stopped.set()
            podman(
                ["stop", "--time", str(max(1, round(self.stop_grace_seconds))), name],
                error=TrainingError,
                what=f"stopping container {name}",
                check=False,
            )

        timer = threading.Timer(job.spec.max_runtime_seconds, stop_at_deadline)
        timer.daemon = True
        timer.start()
        try:
            outcome = run_streaming(
                job.command,
                cwd=job.paths.base,
                env=env,
                on_line=on_line,
                stop_grace_seconds=self.stop_grace_seconds + 10,
            )
        finally:
            timer.cancel()
            remove_container(name)
        if stopped.is_set():
            outcome.timed_out = True
        reason = missing_entry(self.image, "train", "\n".join(outcome.tail))
        if outcome.exit_code != 0 and reason is not None:
            job.paths.failure_file.write_text(f"ClientError: {reason}\n", encoding="utf-8")
        return outcome
