"""``mlcicd image build``: the project's Dockerfile built with podman, tagged
``mlcicd/<pipeline>:<commit[:12]>`` (the tag buildspec.yml gives the image on CodeBuild).

The image must carry *this* mlcicd (the ``train`` and ``serve`` entries are its code), and
mlcicd may not be on the package index the build can reach. So a wheel of the running mlcicd
is built (once per source digest, under the cache) and handed to the Dockerfile's own
``MLCICD_SPEC`` build argument as ``mlcicd[aws] @ file:///mlcicd-wheels/<wheel>``, the wheel's
directory mounted read-only into the build's ``RUN`` steps (``podman build --volume``): the
Dockerfile stays the one CodeBuild runs, and the wheel is not left in the image.

pip inside the build uses the package index this machine's pip uses (its ``index-url``,
``extra-index-url``, ``find-links`` and ``cert``): they are written to a pip.conf mounted at
``/etc/pip.conf`` for the build only, local (``file://``) indexes mounted read-only at the same
paths. The build runs on podman's own network (outbound), or the host's when the index is on
this machine's loopback (:func:`build_network`).

The image is labelled with its context digest (the commit's tree of the project, the base
image and the mlcicd source): an image with that label is reused instead of rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlcicd
from mlcicd import git
from mlcicd.errors import BuildError
from mlcicd.fsutil import locked
from mlcicd.images.podman import image_id, podman, podman_binary, tail
from mlcicd.process import child_environment, run_streaming
from mlcicd.project import Project, cache_dir

BASE_ENV = "MLCICD_IMAGE_BASE"
CONTEXT_LABEL = "io.mlcicd.context-digest"
COMMIT_LABEL = "io.mlcicd.commit"
TAG_LENGTH = 12  # buildspec.yml: the commit's first 12 digits
WHEELS_IN_BUILD = "/mlcicd-wheels"
PIP_CONF_IN_BUILD = "/etc/pip.conf"
CERT_IN_BUILD = "/etc/mlcicd-pip-ca.crt"
_PIP_KEYS = ("index-url", "extra-index-url", "find-links", "trusted-host", "timeout")
_SOURCE_SUFFIXES = (
    ".py",
    ".toml",
    ".cfg",
    ".in",
    ".json",
    ".yaml",
    ".yml",
    ".txt",
    ".html",
    ".js",
    ".css",
)

OnLog = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str  # sha256:… of the image's config: what a job or endpoint ran
    context_digest: str
    base: str | None  # None: the Dockerfile's own FROM
    built: bool  # False: an image of this context digest was reused
    seconds: float
    size_bytes: int | None


def image_tag(pipeline: str, commit: str) -> str:
    return f"localhost/mlcicd/{pipeline.lower()}:{commit[:TAG_LENGTH]}"


def choose_base(explicit: str | None, configured: str | None) -> str | None:
    """``--base``, else ``build.image.base``, else ``$MLCICD_IMAGE_BASE``, else None (FROM)."""
    return explicit or configured or os.environ.get(BASE_ENV) or None


WHEEL_LOCK = ".mlcicd-wheel.lock"  # in the source tree, beside the build/ that pip writes


def _source_root() -> Path:
    """The source tree of the running mlcicd, from which its wheel is built."""
    root = Path(mlcicd.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "src" / "mlcicd").is_dir():
        raise BuildError(
            f"the running mlcicd ({Path(mlcicd.__file__).parent}) is not a source checkout, so "
            "no wheel of it can be put into the image",
            hint="install mlcicd from its source (pip install -e .) to build images",
        )
    return root


def source_digest(root: Path) -> str:
    """sha256 over mlcicd's packaged sources: a new wheel, and new images, when they change."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml", root / "setup.py"]
    files += sorted(
        p
        for p in (root / "src" / "mlcicd").rglob("*")
        if p.suffix in _SOURCE_SUFFIXES and "__pycache__" not in p.parts
    )
    for file in files:
        if file.is_file():
            digest.update(f"{file.relative_to(root)}\0".encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def mlcicd_wheel(log: OnLog) -> tuple[Path, str]:
    """A wheel of the running mlcicd (built once per source digest), and that digest."""
    root = _source_root()
    digest = source_digest(root)
    out = cache_dir() / "wheels" / digest[:16]
    found = sorted(out.glob("mlcicd-*.whl")) if out.is_dir() else []
    if found:
        return found[0], digest
    # pip builds in the source tree (its build/ and egg-info): two builds at once — two runs,
    # or two test workers with caches of their own — overwrite each other's files there and
    # one fails ("No such file or directory"). One build of a tree at a time.
    with locked(root / WHEEL_LOCK):
        found = sorted(out.glob("mlcicd-*.whl")) if out.is_dir() else []
        if found:  # built by the holder we waited for
            return found[0], digest
        return _build_wheel(root, out, log), digest


def _build_wheel(root: Path, out: Path, log: OnLog) -> Path:
    log(f"building a wheel of mlcicd {mlcicd.__version__} from {root}")
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".wheel-", dir=out.parent))
    lines: list[str] = []
    try:
        outcome = run_streaming(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--quiet",
                "-w",
                str(scratch),
                str(root),
            ],
            cwd=root,
            env=dict(os.environ),
            on_line=lines.append,
            max_runtime_seconds=600,
        )
        if outcome.exit_code != 0:
            raise BuildError(f"building the mlcicd wheel failed: {tail(chr(10).join(lines), 10)}")
        os.replace(scratch, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sorted(out.glob("mlcicd-*.whl"))[0]


def host_pip_settings() -> dict[str, str]:
    """What this machine's pip is configured with, among the keys a build needs."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    settings: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in (*_PIP_KEYS, "cert") and value:
            settings.setdefault(name, value.strip().strip("'\""))
    for name in (*_PIP_KEYS, "cert"):  # the environment wins, as with pip itself
        if found := os.environ.get(f"PIP_{name.upper().replace('-', '_')}"):
            settings[name] = found
    return settings


def pip_build_mounts(settings: dict[str, str], scratch: Path) -> list[str]:
    """``--volume`` arguments giving the build's pip the host's index settings."""
    volumes: list[str] = []
    lines = ["[global]"]
    for key in _PIP_KEYS:
        if key not in settings:
            continue
        lines.append(f"{key} = {settings[key]}")
        for location in settings[key].split():
            path = Path(location.removeprefix("file://"))
            if path.name == "simple":  # an index's pages link to files beside simple/
                path = path.parent
            if (location.startswith("file://") or location.startswith("/")) and path.is_dir():
                volumes.append(f"{path}:{path}:ro")
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        volumes.append(f"{cert}:{CERT_IN_BUILD}:ro")
        lines.append(f"cert = {CERT_IN_BUILD}")
    conf = scratch / "pip.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    volumes.append(f"{conf}:{PIP_CONF_IN_BUILD}:ro")
    return [arg for volume in volumes for arg in ("--volume", volume)]


def build_network(settings: dict[str, str]) -> list[str]:
    """The build's network: podman's own (outbound only: this machine's loopback services,
    such as `mlcicd up`, stay out of reach of a Dockerfile's RUN), unless the package index
    is itself on this machine's loopback; then the host's."""
    for key in ("index-url", "extra-index-url", "find-links"):
        for location in settings.get(key, "").split():
            host = urllib.parse.urlsplit(location).hostname or ""
            if host == "localhost" or host.startswith("127.") or host == "::1":
                return ["--network", "host"]
    return []


def context_digest(tree: str, base: str | None, mlcicd_digest: str) -> str:
    return hashlib.sha256(
        json.dumps({"tree": tree, "base": base, "mlcicd": mlcicd_digest}).encode()
    ).hexdigest()


def _cached(digest: str) -> str | None:
    done = podman(
        ["images", "--quiet", "--no-trunc", "--filter", f"label={CONTEXT_LABEL}={digest}"],
        error=BuildError,
        what="looking for a cached image",
    )
    ids = done.stdout.split()
    return ids[0] if ids else None


def _size(tag: str) -> int | None:
    done = podman(
        ["image", "inspect", "--format", "{{.Size}}", tag],
        error=BuildError,
        what="sizing",
        check=False,
    )
    try:
        return int(done.stdout.strip())
    except ValueError:
        return None


def _failed_step(lines: list[str]) -> str:
    """The Dockerfile step that failed, from podman's output ("STEP 5/12: RUN …")."""
    steps = [line for line in lines if line.startswith("STEP ")]
    return steps[-1] if steps else "before the first step"


def build_image(
    context: Path,
    *,
    tag: str,
    tree: str,
    commit: str,
    base: str | None = None,
    dockerfile: str = "Dockerfile",
    force: bool = False,
    log: OnLog = lambda line: None,
    timeout: float = 3600,
) -> BuiltImage:
    """Build ``context``'s Dockerfile as ``tag``; reuse an image of the same context digest
    (``force``: build from scratch, without podman's layer cache either).

    ``tree`` is the git tree id of the context (its content digest), ``commit`` the commit
    it is from. A failure raises ``BuildError`` naming the failing step and its output.
    """
    start = time.monotonic()
    if not (context / dockerfile).is_file():
        raise BuildError(
            f"no {dockerfile} in {context}",
            hint="containers run the project's Dockerfile; `mlcicd init` writes one",
        )
    wheel, mlcicd_digest = mlcicd_wheel(log)
    digest = context_digest(tree, base, mlcicd_digest)
    if not force and (found := _cached(digest)) is not None:
        podman(["tag", found, tag], error=BuildError, what=f"tagging the cached image as {tag}")
        log(f"image {tag} reused: context {digest[:12]} was built before")
        return BuiltImage(
            tag,
            "sha256:" + found.removeprefix("sha256:"),
            digest,
            base,
            False,
            time.monotonic() - start,
            _size(tag),
        )
    pip_settings = host_pip_settings()
    with tempfile.TemporaryDirectory(prefix="mlcicd-build-") as scratch:
        cmd = [
            podman_binary(BuildError),
            "build",
            "--file",
            str(context / dockerfile),
            "--tag",
            tag,
            *build_network(pip_settings),
            "--label",
            f"{CONTEXT_LABEL}={digest}",
            "--label",
            f"{COMMIT_LABEL}={commit}",
            # The digest in the path: a layer cache keyed on the RUN line and its arguments
            # (not on what a volume holds) must not reuse an install of another mlcicd.
            "--volume",
            f"{wheel.parent}:{WHEELS_IN_BUILD}/{mlcicd_digest[:16]}:ro",
            "--build-arg",
            f"MLCICD_SPEC=mlcicd[aws] @ file://{WHEELS_IN_BUILD}/{mlcicd_digest[:16]}/{wheel.name}",
            *pip_build_mounts(pip_settings, Path(scratch)),
        ]
        if base:
            cmd += ["--build-arg", f"BASE_IMAGE={base}"]
        if force:  # from scratch: no layer of an earlier build either
            cmd.append("--no-cache")
        cmd.append(str(context))
        lines: list[str] = []

        def on_line(line: str) -> None:
            lines.append(line)
            log(line)

        log(
            f"$ podman build --tag {tag}{f' --build-arg BASE_IMAGE={base}' if base else ''} "
            f"{context}"
        )
        outcome = run_streaming(
            cmd, cwd=context, env=child_environment(), on_line=on_line, max_runtime_seconds=timeout
        )
    if outcome.timed_out:
        raise BuildError(
            f"building {tag} took longer than {timeout:g}s; stopped at {_failed_step(lines)}"
        )
    if outcome.exit_code != 0 and any("initializing source docker://" in line for line in lines):
        raise BuildError(
            f"building {tag} failed: the base image cannot be pulled here: "
            f"{tail(chr(10).join(lines), 1)}",
            hint="make one with `mlcicd image base` and pass its tag as --base (or "
            "build.image.base, "
            f"${BASE_ENV})",
        )
    if outcome.exit_code != 0:
        raise BuildError(
            f"building {tag} failed at {_failed_step(lines)}:\n{tail(chr(10).join(lines), 15)}",
            hint=f"fix {context / dockerfile} (or the base image: --base, build.image.base, "
            f"${BASE_ENV})",
        )
    return BuiltImage(
        tag,
        image_id(tag, error=BuildError),
        digest,
        base,
        True,
        time.monotonic() - start,
        _size(tag),
    )


def build_project_image(
    project: Project,
    *,
    base: str | None = None,
    force: bool = False,
    log: OnLog = lambda line: None,
) -> BuiltImage:
    """The image of the project's last commit (HEAD): what ``mlcicd image build`` builds.

    Only committed content goes in, exported as the source stage exports it; the base is
    ``base``, else ``build.image.base``, else ``$MLCICD_IMAGE_BASE``, else the FROM."""
    config = project.config
    settings = config.build.image_settings
    commit = git.resolve_commit(
        project.repo, project.rel, "HEAD", git.current_branch(project.repo) or "HEAD"
    )
    dirty = git.dirty_paths(project.repo, project.rel)
    if dirty:
        log(
            f"{len(dirty)} uncommitted file(s) are NOT in the image: it is built from commit "
            f"{commit.sha[:12]}"
        )
    context = project.state_dir / "sources" / commit.tree
    if not context.is_dir():
        git.export_tree(project.repo, commit.sha, project.rel, context)
    return build_image(
        context,
        tag=image_tag(config.pipeline, commit.sha),
        tree=commit.tree,
        commit=commit.sha,
        base=choose_base(base, settings.base if settings else None),
        dockerfile=settings.dockerfile if settings else "Dockerfile",
        force=force,
        log=log,
    )
