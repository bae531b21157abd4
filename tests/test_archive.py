from __future__ import annotations

import io
import os
import tarfile
import threading
import zlib
from pathlib import Path

import pytest

from mlcicd.archive import (
    MARKER,
    Limits,
    ensure_extracted,
    extracted_sha256,
    pack_dir,
    safe_extract,
)
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


@pytest.mark.parametrize(
    ("kind", "linkname"),
    [
        (tarfile.SYMTYPE, "../../etc/passwd"),
        (tarfile.SYMTYPE, "sub/vocab.txt"),  # even inside: we never pack links
        (tarfile.LNKTYPE, "/etc/passwd"),
        (tarfile.LNKTYPE, "model.joblib"),
    ],
)
def test_every_link_is_refused(tmp_path: Path, kind: bytes, linkname: str) -> None:
    link = tarfile.TarInfo("link")
    link.type = kind
    link.linkname = linkname
    archive = _tar(tmp_path / "evil.tar.gz", link)
    with pytest.raises(ArtifactError, match="is a link"):
        safe_extract(archive, tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz"]


def test_a_symlink_chain_writes_nothing_outside(tmp_path: Path) -> None:
    """d1 -> ., d1/d2 -> .., d2/x: each link alone stays inside, together they lead out (the
    CVE-2025-4517 class, which ``filter="data"`` of older patch releases lets through)."""
    d1, d2 = tarfile.TarInfo("d1"), tarfile.TarInfo("d1/d2")
    d1.type = d2.type = tarfile.SYMTYPE
    d1.linkname, d2.linkname = ".", ".."
    archive = _tar(tmp_path / "evil.tar.gz", d1, d2, tarfile.TarInfo("d2/x"))
    stage = tmp_path / "stage"
    stage.mkdir()
    with pytest.raises(ArtifactError, match="'d1' is a link"):
        safe_extract(archive, stage / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz", "stage"]
    assert list(stage.iterdir()) == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (tarfile.CHRTYPE, "device or fifo"),
        (tarfile.BLKTYPE, "device or fifo"),
        (tarfile.FIFOTYPE, "device or fifo"),
        (tarfile.GNUTYPE_SPARSE, "tar type"),
        (tarfile.CONTTYPE, "tar type"),
    ],
)
def test_special_members_are_refused(tmp_path: Path, kind: bytes, message: str) -> None:
    special = tarfile.TarInfo("dev")
    special.type = kind
    with pytest.raises(ArtifactError, match=message):
        safe_extract(_tar(tmp_path / "evil.tar.gz", special), tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz"]


def test_a_member_named_like_the_marker_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", tarfile.TarInfo(f"./{MARKER}"))
    with pytest.raises(ArtifactError, match="the name mlcicd marks trees with"):
        safe_extract(archive, tmp_path / "out")


def _many_members(path: Path, count: int) -> Path:
    """A gzip'd tar of ``count`` empty-file headers, made on the fly (~2 MB for a million)."""
    header = tarfile.TarInfo("x").tobuf(tarfile.USTAR_FORMAT)
    per_chunk = 2048
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    with open(path, "wb") as out:
        for start in range(0, count, per_chunk):
            out.write(compressor.compress(header * min(per_chunk, count - start)))
        out.write(compressor.compress(b"\0" * 1024) + compressor.flush())
    return path


def test_a_million_members_stop_at_the_cap(tmp_path: Path) -> None:
    archive = _many_members(tmp_path / "many.tar.gz", 1_000_000)
    assert archive.stat().st_size < 8 * 1024 * 1024
    with pytest.raises(ArtifactError, match="more than 1000 members"):
        safe_extract(archive, tmp_path / "out", limits=Limits(max_members=1000))
    assert [p.name for p in tmp_path.iterdir()] == ["many.tar.gz"]


def test_a_size_bomb_stops_at_its_header(tmp_path: Path) -> None:
    """A header claiming 20 GiB (of zeros, ~1000:1 compressed) is refused before its data is
    read: the archive on disk is a few MB and extraction does not decompress it."""
    bomb = tarfile.TarInfo("weights.bin")
    bomb.size = 20 * 1024**3
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(tmp_path / "bomb.tar.gz", "wb") as out:
        out.write(compressor.compress(bomb.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(64):
            out.write(compressor.compress(bytes(1 << 20)))
        out.write(compressor.flush())
    with pytest.raises(ArtifactError, match=r"more than 10737418240 bytes \(at 'weights.bin'\)"):
        safe_extract(tmp_path / "bomb.tar.gz", tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == ["bomb.tar.gz"]


def test_the_size_cap_counts_every_member(tmp_path: Path) -> None:
    files = [tarfile.TarInfo(f"part{i}") for i in range(3)]
    archive = _tar(tmp_path / "m.tar.gz", *files, data=bytes(4000))
    with pytest.raises(ArtifactError, match="more than 10000 bytes \\(at 'part2'\\)"):
        safe_extract(archive, tmp_path / "out", limits=Limits(max_bytes=10_000))
    assert [p.name for p in tmp_path.iterdir()] == ["m.tar.gz"]
    safe_extract(archive, tmp_path / "out", limits=Limits(max_bytes=12_000))


def test_limits_come_from_the_environment() -> None:
    assert Limits.from_env({}) == Limits(max_bytes=10 * 1024**3, max_members=100_000)
    env = {"MLCICD_MAX_MODEL_BYTES": "5000", "MLCICD_MAX_MODEL_MEMBERS": "7"}
    assert Limits.from_env(env) == Limits(max_bytes=5000, max_members=7)
    with pytest.raises(ArtifactError, match="MLCICD_MAX_MODEL_MEMBERS='lots' is not a positive"):
        Limits.from_env({"MLCICD_MAX_MODEL_MEMBERS": "lots"})


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


def test_trailing_bytes_count_in_the_digest(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), archive)
    with open(archive, "ab") as out:  # tar stops reading at its end marker; the digest must not
        out.write(b"appended")
    with pytest.raises(ArtifactError, match="expected " + digest[:12]):
        safe_extract(archive, tmp_path / "out", expected_sha256=digest)
    assert not (tmp_path / "out").exists()


def test_the_bytes_hashed_are_the_bytes_extracted(tmp_path: Path) -> None:
    """A fifo can be read once: extraction that hashed, then reopened the file to extract it
    (a window to swap it in between) cannot pass this."""
    packed = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), packed)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as out:
            out.write(packed.read_bytes())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert safe_extract(fifo, tmp_path / "out", expected_sha256=digest) == digest
    writer.join(timeout=10)
    assert (tmp_path / "out" / "model.joblib").read_bytes() == b"weights"


def test_an_extracted_tree_is_marked_with_its_digest(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), archive)
    out = ensure_extracted(archive, tmp_path / "out", expected_sha256=digest)
    assert extracted_sha256(out) == digest
    archive.unlink()  # a marked tree is used as it is
    assert ensure_extracted(archive, out, expected_sha256=digest) == out


def test_a_tree_a_crash_left_incomplete_is_extracted_again(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), archive)
    partial = tmp_path / "out"
    partial.mkdir()
    (partial / "model.joblib").write_bytes(b"wei")  # cut short, and no marker
    ensure_extracted(archive, partial, expected_sha256=digest)
    assert (partial / "model.joblib").read_bytes() == b"weights"
    assert (partial / "sub" / "vocab.txt").is_file()
    assert extracted_sha256(partial) == digest


def test_a_tree_of_another_model_is_replaced(tmp_path: Path) -> None:
    archive = tmp_path / "m.tar.gz"
    digest = pack_dir(_model_dir(tmp_path), archive)
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text('{"sha256": "%s"}' % ("0" * 64))
    ensure_extracted(archive, out, expected_sha256=digest)
    assert extracted_sha256(out) == digest
