"""``mlcicd image base`` made by two sessions at once: one debootstraps, the other waits and
reuses its image. debootstrap and podman are small scripts here (PATH and MLCICD_PODMAN, the
seams a user has too): the real ones take minutes; the lock, chroot and tar are real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcicd.images.podman import PODMAN_ENV
from tests.helpers import kill_tree, wait_for

pytestmark = [
    pytest.mark.integration,  # processes
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("chroot") is None,
        reason="the base image's chroot steps need root, as debootstrap does",
    ),
]

TAG = "localhost/mlcicd-test/python-base:lock"

# debootstrap SUITE ROOTFS MIRROR, in short: a rootfs whose python3 answers what the image's
# checks ask (its version; -m venv), once the test lets it go on.
_DEBOOTSTRAP = """#!/bin/sh
for last; do :; done
echo "start $$" >> {events}
read go < {release}
rootfs=$(eval echo \\${{$(($# - 1))}})
mkdir -p "$rootfs/bin" "$rootfs/usr/bin" {lib_dirs}
cp /bin/dash "$rootfs/bin/sh"
{copy_libs}
printf '#!/bin/sh\\n[ "$1" = -c ] && echo 3 99 0\\nexit 0\\n' > "$rootfs/usr/bin/python3"
chmod +x "$rootfs/usr/bin/python3"
echo "end $$" >> {events}
"""

# podman image exists|inspect|import, with images as files in a directory.
_PODMAN = """#!/bin/sh
for last; do :; done
image={images}/$(echo "$last" | tr / _)
case "$1 $2" in
  "image exists") test -e "$image" ;;
  "image inspect") cat "$image" ;;
  "import "*) cat > /dev/null && echo "sha256:made-by-$$" > "$image" && echo import >> {events} ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""

_MAKE = (
    "import sys; from pathlib import Path; from mlcicd.images.base import make_base_image; "
    f"made = make_base_image({TAG!r}, suite='trixie', mirror='http://mirror.invalid/debian', "
    "workdir=Path(sys.argv[1])); print(made.built, made.image_id)"
)


def _libraries(binary: str) -> list[str]:
    """The shared libraries ``binary`` loads (ldd's absolute paths)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"(/\S+) \(0x", out)


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a session whose debootstrap and podman are the scripts above."""
    bin_dir, images = tmp_path / "bin", tmp_path / "images"
    bin_dir.mkdir()
    images.mkdir()
    os.mkfifo(tmp_path / "release")
    libs = _libraries("/bin/dash")
    fields = {
        "events": tmp_path / "events",
        "release": tmp_path / "release",
        "images": images,
        "lib_dirs": " ".join(f'"$rootfs{os.path.dirname(lib)}"' for lib in libs),
        "copy_libs": "\n".join(f'cp {lib} "$rootfs{lib}"' for lib in libs),
    }
    (bin_dir / "debootstrap").write_text(_DEBOOTSTRAP.format(**fields))
    (bin_dir / "podman").write_text(_PODMAN.format(**fields))
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    env[PODMAN_ENV] = str(bin_dir / "podman")
    env["MLCICD_CACHE"] = str(tmp_path / "cache")  # both sessions': one user's
    yield env


def _waiting_on_a_lock(pid: int) -> bool:
    """``pid`` is blocked in flock (a ``->`` line of /proc/locks)."""
    with open("/proc/locks", encoding="ascii") as fh:
        return any(
            line.split()[1:4] == ["->", "FLOCK", "ADVISORY"] and line.split()[5] == str(pid)
            for line in fh
        )


def test_two_sessions_make_the_base_image_once(tmp_path: Path, tools: dict[str, str]) -> None:
    events = tmp_path / "events"
    sessions: list[subprocess.Popen[str]] = []

    def session() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", _MAKE, str(tmp_path)],
            env=tools,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sessions.append(proc)
        return proc

    def started() -> int:
        return _read(events).count("start")

    try:
        first = session()
        wait_for("the first session's debootstrap", started)
        second = session()
        wait_for(
            "the second session to wait on the lock, or to debootstrap too",
            lambda: _waiting_on_a_lock(second.pid) or started() > 1,
        )
        assert started() == 1, "two sessions debootstrap at once"
        with open(tmp_path / "release", "w") as release:
            release.write("go\n")
        out = [proc.communicate(timeout=120) for proc in (first, second)]
        assert [proc.returncode for proc in (first, second)] == [0, 0], out
        image_id = (tmp_path / "images" / TAG.replace("/", "_")).read_text().strip()
        assert [stdout.split() for stdout, _ in out] == [
            ["True", image_id],
            ["False", image_id],  # the waiter reused the image the first one made
        ]
        assert events.read_text().split()[::2] == ["start", "end", "import"]
    finally:  # a debootstrap still waiting (in a session of its own): its session then fails
        kill_tree(int(pid) for pid in re.findall(r"start (\d+)", _read(events)))
        for proc in sessions:
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
