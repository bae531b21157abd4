"""``mlcicd image base``: a Python base image made from Debian packages, for machines that
cannot pull one.

No image registry is needed: ``debootstrap`` installs a minimal Debian (``minbase``) with
``python3`` and ``python3-venv`` from the apt mirror this machine already uses, a virtual
environment at ``/opt/venv`` goes first on ``PATH`` (Debian's Python refuses ``pip install``
into itself, PEP 668; the venv also gives the ``python`` and ``pip`` commands the
Dockerfile and the ``train``/``serve`` entries call), and the tree is imported as an image
(``tar -c . | podman import``). Debian's own Python is what runs: 3.11 on bookworm.

It is made once per machine: a tag that exists is reused, and one session makes it at a time
(a lock in the cache directory; a session that waited reuses the image). debootstrap needs
root.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mlcicd.errors import BuildError
from mlcicd.fsutil import locked, sha256_bytes
from mlcicd.images.podman import image_exists, image_id, podman_binary, tail
from mlcicd.process import child_environment, run_streaming
from mlcicd.project import cache_dir

DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
VENV = "/opt/venv"
# What the image says about itself (podman import --change).
IMAGE_CHANGES = (
    f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
# Written by dpkg/apt during debootstrap and useless in an image.
_CACHES = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "var/cache/debconf",
    "usr/share/doc",
    "usr/share/man",
)


@dataclass(frozen=True)
class BaseImage:
    tag: str
    image_id: str
    built: bool  # False: the tag existed and was reused
    seconds: float
    suite: str
    mirror: str


def host_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """This machine's Debian suite (``bookworm``), the default of the image's."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        text = ""
    match = re.search(r'^VERSION_CODENAME="?([a-z]+)"?$', text, re.MULTILINE)
    if match is None:
        raise BuildError(
            f"cannot tell this machine's Debian suite from {os_release}",
            hint="pass --suite (e.g. bookworm)",
        )
    return match.group(1)


def host_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here: on a machine that reaches only that one, it is the only
    one debootstrap can use. Read from sources.list and sources.list.d (both formats)."""
    files = [
        apt_dir / "sources.list",
        *sorted((apt_dir / "sources.list.d").glob("*.sources")),
        *sorted((apt_dir / "sources.list.d").glob("*.list")),
    ]
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            urls = re.findall(r"(https?://\S+)", line)
            if (line.startswith("URIs:") or line.startswith("deb ")) and urls:
                url = str(urls[0]).rstrip("/")
                if url.endswith("/debian"):  # the main archive, not -security or a vendor's
                    return url
    return DEFAULT_MIRROR


def _debootstrap(rootfs: Path, suite: str, mirror: str, log: list[str]) -> None:
    binary = shutil.which("debootstrap")
    if binary is None:
        raise BuildError(
            "debootstrap is needed to make a base image and is not on PATH",
            hint="apt-get install debootstrap (scripts/containers.sh does), or pass --base IMAGE",
        )
    cmd = [
        binary,
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        suite,
        str(rootfs),
        mirror,
    ]
    outcome = run_streaming(
        cmd, cwd=rootfs.parent, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, on_line=log.append
    )
    if outcome.exit_code != 0:
        raise BuildError(
            f"debootstrap {suite} from {mirror} failed (exit {outcome.exit_code}): "
            f"{tail(chr(10).join(log), 12)}",
            hint="it needs root and the mirror; check /etc/apt/sources.list*, or pass --mirror",
        )


def _make_venv(rootfs: Path, log: list[str]) -> None:
    cmd = ["chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", VENV]
    outcome = run_streaming(
        cmd, cwd=rootfs, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, on_line=log.append
    )
    if outcome.exit_code != 0:
        raise BuildError(f"making {VENV} in the base image failed: {tail(chr(10).join(log), 12)}")
    for cache in _CACHES:
        target = rootfs / cache
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()


def required_python(requires: str | None = None) -> tuple[int, ...]:
    """The lowest Python the running mlcicd installs on (its ``Requires-Python: >=X.Y[.Z]``)."""
    if requires is None:
        try:
            requires = importlib.metadata.metadata("mlcicd")["Requires-Python"] or ""
        except importlib.metadata.PackageNotFoundError:
            requires = ""
    match = re.search(r">=\s*([0-9]+(?:\.[0-9]+)*)", requires)
    return tuple(int(part) for part in match.group(1).split(".")) if match else (3,)


def _check_python(rootfs: Path, suite: str) -> None:
    """The image's Python must install this mlcicd; a suite whose Python is older fails here,
    not minutes later in the first ``pip install`` of every project image."""
    done = subprocess.run(
        [
            "chroot",
            str(rootfs),
            "/usr/bin/python3",
            "-c",
            "import sys; print(*sys.version_info[:3])",
        ],
        capture_output=True,
        text=True,
    )
    found = tuple(int(part) for part in done.stdout.split()) if done.returncode == 0 else ()
    needed = required_python()
    if found < needed:
        shown = ".".join(map(str, found)) or "none"
        raise BuildError(
            f"Debian {suite}'s Python is {shown}, and mlcicd needs Python >= "
            f"{'.'.join(map(str, needed))}",
            hint="pass a newer suite: mlcicd image base --suite trixie",
        )


def _import(rootfs: Path, tag: str) -> None:
    changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
    podman = podman_binary(BuildError)
    with subprocess.Popen(
        ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    ) as tar:
        done = subprocess.run(
            [podman, "import", *changes, "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=child_environment(),
        )
        if tar.stdout is not None:
            tar.stdout.close()
    if tar.returncode != 0 or done.returncode != 0:
        raise BuildError(
            f"importing the base image as {tag} failed: {tail(done.stderr or done.stdout, 8)}"
        )


def default_tag(suite: str) -> str:
    return f"localhost/mlcicd/python-base:{suite}"


def make_base_image(
    tag: str | None = None,
    *,
    suite: str | None = None,
    mirror: str | None = None,
    workdir: Path | None = None,
    force: bool = False,
) -> BaseImage:
    """The base image ``tag`` (default ``localhost/mlcicd/python-base:<suite>``): reused when it
    exists (unless ``force``), else made as the module says."""
    suite = suite or host_suite()
    mirror = (mirror or host_mirror()).rstrip("/")
    tag = tag or default_tag(suite)
    start = time.monotonic()

    def made(built: bool) -> BaseImage:
        return BaseImage(
            tag, image_id(tag, error=BuildError), built, time.monotonic() - start, suite, mirror
        )

    if not force and image_exists(tag, error=BuildError):
        return made(False)
    # Two sessions (a CLI and a service, two test runs) missing the image at once would both
    # debootstrap — minutes each, the mirror twice — and import over each other: one makes
    # it while the other waits, then reuses it.
    with locked(cache_dir() / "images" / f"base-{sha256_bytes(tag.encode())[:16]}.lock"):
        if not force and image_exists(tag, error=BuildError):
            return made(False)  # made by the holder we waited for
        log: list[str] = []
        with tempfile.TemporaryDirectory(prefix="mlcicd-rootfs-", dir=workdir) as scratch:
            rootfs = Path(scratch) / "rootfs"
            rootfs.mkdir()
            _debootstrap(rootfs, suite, mirror, log)
            _check_python(rootfs, suite)
            _make_venv(rootfs, log)
            _import(rootfs, tag)
        return made(True)
