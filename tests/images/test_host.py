"""What a base image and a build take from this machine: its apt mirror, suite and pip index."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.errors import BuildError
from mlcicd.images.base import DEFAULT_MIRROR, host_mirror, host_suite


def test_the_mirror_is_the_main_archive_apt_uses(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
        "URIs: http://mirror.internal/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.internal/debian/\nSuites: bookworm\n"
    )
    assert host_mirror(tmp_path) == "http://mirror.internal/debian"


def test_a_one_line_sources_list_works_too(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] https://deb.example.org/debian bookworm main\n"
    )
    assert host_mirror(tmp_path) == "https://deb.example.org/debian"
    assert host_mirror(tmp_path / "nothing-here") == DEFAULT_MIRROR


def test_the_suite_is_this_machines(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')
    assert host_suite(release) == "bookworm"
    release.write_text('NAME="Something"\n')
    with pytest.raises(BuildError, match="pass --suite"):
        host_suite(release)


def test_a_build_reaches_the_hosts_network_only_for_an_index_on_loopback() -> None:
    from mlcicd.images.build import build_network

    assert (
        build_network(
            {"index-url": "https://pypi.org/simple", "extra-index-url": "file:///opt/pypi/simple"}
        )
        == []
    )
    assert build_network(
        {"extra-index-url": "https://pypi.org/simple http://127.0.0.1:3141/root/pypi"}
    ) == [
        "--network",
        "host",
    ]
    assert build_network({"find-links": "http://localhost:8000/wheels"}) == ["--network", "host"]


def test_the_image_python_must_meet_mlcicds_requires_python() -> None:
    from mlcicd.images.base import required_python

    assert required_python(">=3.11.4") == (3, 11, 4)
    assert required_python(">= 3.12") == (3, 12)
    assert required_python("") == (3,)
    assert required_python() >= (3, 11)  # the installed mlcicd's own metadata
