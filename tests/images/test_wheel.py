"""The mlcicd wheel that goes into images: two builds of one source tree at once (two runs, two
test workers with caches of their own) both end with a wheel — pip builds in the tree's build/,
and two at once used to fail one of them with "No such file or directory"."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # real pip builds, in parallel processes

BUILD = "from mlcicd.images.build import mlcicd_wheel; print(mlcicd_wheel(lambda line: None)[0])"


def test_two_builds_at_once_both_make_a_whole_wheel(tmp_path: Path) -> None:
    builds = [
        subprocess.Popen(
            [sys.executable, "-c", BUILD],
            env={**os.environ, "MLCICD_CACHE": str(tmp_path / f"cache-{n}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for build in builds:
        out, err = build.communicate(timeout=600)
        assert build.returncode == 0, err[-2000:]
        wheel = Path(out.strip().splitlines()[-1])
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        assert "mlcicd/serving/worker.py" in names and "mlcicd/images/build.py" in names
