from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from mlcicd.archive import pack_dir, safe_extract
from mlcicd.errors import ArtifactError
from mlcicd.fsutil import sha256_file


def _model_dir(root: Path) -> Path:
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "model.joblib").write_bytes(b"weights")
    (model / "sub" / "vocab.txt").write_text("a\nb\n")
    return model


def _tar(path: Path, *members: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def test_packing_is_reproducible_and_round_trips(tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    first = pack_dir(model, tmp_path / "a.tar.gz")
    os.utime(model / "model.joblib", (1, 1))  # mtimes must not change the digest
    second = pack_dir(model, tmp_path / "b.tar.gz")
    assert first == second == sha256_file(tmp_path / "a.tar.gz")
    safe_extract(tmp_path / "a.tar.gz", tmp_path / "out", expected_sha256=first)
    assert (tmp_path / "out" / "model.joblib").read_bytes() == b"weights"
    assert (tmp_path / "out" / "sub" / "vocab.txt").read_text() == "a\nb\n"


def test_links_are_not_packed(tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    (model / "link").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="links are not allowed"):
        pack_dir(model, tmp_path / "m.tar.gz")
    assert not (tmp_path / "m.tar.gz").exists()


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (tarfile.TarInfo("../escape.txt"), "escapes the target"),
        (tarfile.TarInfo("/abs/escape.txt"), "escapes the target"),
        (tarfile.TarInfo("a/../../escape.txt"), "escapes the target"),
    ],
)
def test_traversal_is_refused(tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", member)
    with pytest.raises(ArtifactError, match=message):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz"]  # no staging left behind


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_out_of_the_target_are_refused(tmp_path: Path, kind: bytes) -> None:
    link = tarfile.TarInfo("model.joblib")
    link.type = kind
    link.linkname = "../../etc/passwd" if kind == tarfile.SYMTYPE else "/etc/passwd"
    archive = _tar(tmp_path / "evil.tar.gz", link)
    with pytest.raises(ArtifactError, match="points outside the target"):
        safe_extract(archive, tmp_path / "out")


def test_devices_are_refused(tmp_path: Path) -> None:
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    with pytest.raises(ArtifactError, match="device or fifo"):
        safe_extract(_tar(tmp_path / "evil.tar.gz", device), tmp_path / "out")


def test_digest_is_checked_before_anything_is_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), archive)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(ArtifactError, match="expected " + digest[:12]):
        safe_extract(archive, tmp_path / "out", expected_sha256=digest)
    assert not (tmp_path / "out").exists()


def test_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(b"not a tarball")
    with pytest.raises(ArtifactError, match="cannot read model artifact"):
        safe_extract(archive, tmp_path / "out")


def test_extraction_replaces_a_previous_copy_whole(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    pack_dir(_model_dir(tmp_path), archive)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "stale.txt").exists()
