"""Calling podman: found once, run with its output captured, failures said in our terms.

podman, not Docker: it needs no daemon (a container is a child of the command that runs
it), runs as root or rootless, and reads the same Dockerfiles and images. ``MLCICD_PODMAN``
names another binary (a wrapper, or ``docker`` where its CLI suffices for what we call).

podman runs with :func:`mlcicd.process.child_environment`: it runs the project's code (a
build's ``RUN`` steps, ``train``, ``serve``), and whatever reaches a container reaches it
through podman — so neither mlcicd's secrets nor AWS credentials are in podman's
environment at all. What a container must see is passed by name (``--env NAME``).

Every call names the error class to raise, so a failure reads as the stage's own: a
``BuildError`` while building an image, a ``TrainingError`` while training, an
``EndpointError`` while serving.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mlcicd.errors import MlcicdError
from mlcicd.process import child_environment

PODMAN_ENV = "MLCICD_PODMAN"
INSTALL_HINT = (
    "install podman (Debian/Ubuntu: apt-get install podman buildah; or run scripts/containers.sh), "
    "or use backend: local"
)
TAIL_LINES = 20


def podman_binary(error: type[MlcicdError]) -> str:
    """The podman to call; ``error`` with the install hint when there is none."""
    name = os.environ.get(PODMAN_ENV) or "podman"
    found = shutil.which(name)
    if found is None:
        raise error(
            f"podman is needed for containers and {name!r} is not on PATH", hint=INSTALL_HINT
        )
    return found


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``, for an error message."""
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def podman(
    args: Sequence[str],
    *,
    error: type[MlcicdError],
    what: str,
    timeout: float | None = 300.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``podman ARGS``, output captured; ``error`` saying ``what`` failed, with podman's words.

    ``check=False`` returns a failed call instead (for the questions whose answer is "no").
    """
    cmd = [podman_binary(error), *args]
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=child_environment(),
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{what}: podman did not answer within {timeout:g}s ({' '.join(cmd)})") from exc
    except OSError as exc:
        raise error(f"{what}: cannot run {cmd[0]}: {exc}", hint=INSTALL_HINT) from exc
    if check and done.returncode != 0:
        said = tail(done.stderr or done.stdout, 8) or f"exit code {done.returncode}"
        raise error(f"{what}: {said}")
    return done


def image_exists(tag: str, *, error: type[MlcicdError]) -> bool:
    done = podman(
        ["image", "exists", tag], error=error, what=f"looking for image {tag}", check=False
    )
    return done.returncode == 0


def image_id(tag: str, *, error: type[MlcicdError]) -> str:
    """The image's content digest (``sha256:…`` of its config): what a job ran, exactly."""
    if not image_exists(tag, error=error):
        raise error(
            f"image {tag} does not exist on this machine",
            hint="build it: mlcicd image build (or set build.image: true)",
        )
    done = podman(
        ["image", "inspect", "--format", "{{.Id}}", tag],
        error=error,
        what=f"inspecting image {tag}",
    )
    return "sha256:" + done.stdout.strip().removeprefix("sha256:")


def root_id(root: Path) -> str:
    """A short id of the directory whose jobs or endpoints a container runs, for its name:
    container names are machine-wide, so two checkouts running the same job or endpoint name
    at once must not pick the same one."""
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]


def remove_container(name: str) -> None:
    """Stop and remove container ``name`` if it exists; never raises (used in cleanups)."""
    try:
        binary = podman_binary(MlcicdError)
        subprocess.run(
            [binary, "rm", "--force", "--time", "5", name],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            env=child_environment(),
        )
    except (MlcicdError, OSError, subprocess.SubprocessError):
        pass


def missing_entry(image: str, entry: str, output: str) -> str | None:
    """Why a container of ``image`` could not start ``entry``, if that is what ``output`` says."""
    if f'"{entry}": executable file not found' not in output:
        return None
    return (
        f"image {image} has no `{entry}` on its PATH: SageMaker runs `docker run IMAGE {entry}`; "
        "copy the entry into the image (the template's Dockerfile: COPY docker/train "
        "docker/serve /usr/local/bin/)"
    )
