"""/opt/ml/checkpoints kept in the store: a killed job's rerun resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from mlcicd.errors import TrainingError
from mlcicd.store.local import LocalArtifactStore
from mlcicd.training import CheckpointConfig, LocalTrainingBackend
from mlcicd.training.checkpoints import MANIFEST, restore, save
from tests.training.conftest import make_spec, write_source

# Five steps, each checkpointed where SageMaker puts /opt/ml/checkpoints (beside the model
# dir); with STOP_AT set it reports its pid after that step's checkpoint and waits to be
# killed. It says where it started, and the model says it too.
RESUMING = """
    import json, os, sys, time
    from pathlib import Path

    model = Path(os.environ["SM_MODEL_DIR"])
    ckpt = model.parent / "checkpoints"
    state = ckpt / "state.json"
    start = json.loads(state.read_text())["next"] if state.exists() else 0
    print(f"starting at step {start}", flush=True)
    for step in range(start, 5):
        print(f"step {step}", flush=True)
        (ckpt / "shards").mkdir(exist_ok=True)
        (ckpt / "shards" / f"{step}.bin").write_bytes(bytes([step]) * 10)
        state.write_text(json.dumps({"next": step + 1}))
        if str(step) == os.environ.get("STOP_AT"):
            print(f"checkpointed, pid {os.getpid()}", flush=True)
            time.sleep(600)
    (model / "model.txt").write_text(f"started at step {start}")
"""
WHERE = CheckpointConfig("models", "iris/checkpoints/abc123")


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


@pytest.fixture
def keeping(tmp_path: Path, store: LocalArtifactStore) -> LocalTrainingBackend:
    return LocalTrainingBackend(tmp_path / "jobs", stop_grace_seconds=0.5, store=store)


def kill_when_checkpointed(line: str) -> None:
    """The test's on_log: SIGKILL the training process once it says it checkpointed."""
    if line.startswith("checkpointed, pid "):
        os.kill(int(line.rsplit(" ", 1)[1]), signal.SIGKILL)


@pytest.mark.integration
def test_a_job_killed_mid_way_resumes_from_its_checkpoint_on_the_rerun(
    tmp_path: Path, keeping: LocalTrainingBackend, store: LocalArtifactStore
) -> None:
    source = write_source(tmp_path, RESUMING)
    first = keeping.run(
        make_spec(source, "attempt-1", checkpoints=WHERE, environment={"STOP_AT": "2"}),
        on_log=kill_when_checkpointed,
    )
    assert first.status == "Failed" and "killed by signal 9" in (first.failure_reason or "")
    kept = json.loads(store.read_bytes(store.uri("models", f"{WHERE.prefix}/{MANIFEST}")))
    assert kept["job"] == "attempt-1"
    assert sorted(kept["files"]) == ["shards/0.bin", "shards/1.bin", "shards/2.bin", "state.json"]

    second = keeping.run(make_spec(source, "attempt-2", checkpoints=WHERE))
    assert second.status == "Completed", second.failure_reason
    log = second.log_path.read_text()
    assert "checkpoints: 4 file(s) of job attempt-1 restored" in log
    assert "starting at step 3" in log and "step 2\n" not in log  # the script resumed
    job = keeping.job_dir("attempt-2")
    assert (job / "model" / "model.txt").read_text() == "started at step 3"
    assert (job / "checkpoints" / "shards" / "0.bin").read_bytes() == bytes(10)
    described = json.loads((job / "description.json").read_text())
    assert described["CheckpointsRestoredFrom"] == "attempt-1"

    # Completed: the kept set is cleared, so the next job of this training starts afresh.
    third = keeping.run(make_spec(source, "attempt-3", checkpoints=WHERE))
    assert "starting at step 0" in third.log_path.read_text()


@pytest.mark.integration
def test_without_checkpoints_a_rerun_starts_over(
    tmp_path: Path, keeping: LocalTrainingBackend
) -> None:
    source = write_source(tmp_path, RESUMING)
    first = keeping.run(
        make_spec(source, "attempt-1", environment={"STOP_AT": "1"}),
        on_log=kill_when_checkpointed,
    )
    assert first.status == "Failed"
    second = keeping.run(make_spec(source, "attempt-2"))
    assert "starting at step 0" in second.log_path.read_text()


def test_checkpoints_without_a_store_are_refused_before_anything_runs(
    tmp_path: Path, backend: LocalTrainingBackend
) -> None:
    spec = make_spec(write_source(tmp_path, RESUMING), checkpoints=WHERE)
    with pytest.raises(TrainingError, match="keeps checkpoints, and this backend has no store"):
        backend.run(spec)
    assert not backend.job_dir("job-1").exists()


def manifest(store: LocalArtifactStore, files: dict[str, str], job: str = "elsewhere") -> None:
    body = json.dumps({"job": job, "files": files}).encode()
    store.put_bytes(body, WHERE.bucket, f"{WHERE.prefix}/{MANIFEST}")


def kept_file(store: LocalArtifactStore, data: bytes) -> str:
    """``data`` kept under its digest, as save keeps a file; the digest."""
    digest = store.put_bytes(data, WHERE.bucket, f"{WHERE.prefix}/files/x").sha256
    store.put_bytes(data, WHERE.bucket, f"{WHERE.prefix}/files/{digest}")
    return digest


@pytest.mark.parametrize(
    "name", ["../outside.txt", "/etc/cron.d/x", "a/../../b", ".", "a/./b", "a/", "a\0b", "a\\b"]
)
def test_a_manifest_naming_a_path_outside_checkpoints_is_refused(
    tmp_path: Path, store: LocalArtifactStore, name: str
) -> None:
    manifest(store, {name: "0" * 64})
    with pytest.raises(TrainingError, match="not a path inside the job's checkpoints/"):
        restore(store, WHERE, tmp_path / "ckpt")
    assert not (tmp_path / "outside.txt").exists()


def test_a_manifest_naming_a_file_and_a_folder_inside_it_is_refused_as_damaged(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    """A file where a folder goes (or a full disk) is the same clear refusal, never an OSError."""
    digest = kept_file(store, b"w")
    manifest(store, {"a": digest, "a/b": digest})
    with pytest.raises(TrainingError, match=r"are damaged: a/b: File exists") as raised:
        restore(store, WHERE, tmp_path / "ckpt")
    assert "remove that folder from the store" in (raised.value.hint or "")


def test_one_file_named_many_times_is_capped_as_a_model_archive_is(
    tmp_path: Path, store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One kept file, named under many paths, would write many times its size."""
    digest = kept_file(store, b"w" * 1000)
    manifest(store, {f"copy-{i}": digest for i in range(10)})
    monkeypatch.setenv("MLCICD_MAX_MODEL_BYTES", "4500")
    with pytest.raises(TrainingError, match=r"more than 4500 bytes \(MLCICD_MAX_MODEL_BYTES\)"):
        restore(store, WHERE, tmp_path / "ckpt")
    assert len(list((tmp_path / "ckpt").iterdir())) == 5  # and not one more
    monkeypatch.setenv("MLCICD_MAX_MODEL_MEMBERS", "9")
    with pytest.raises(TrainingError, match=r"name 10 files, more than 9"):
        restore(store, WHERE, tmp_path / "again")
    assert not (tmp_path / "again").exists()


def test_the_job_a_manifest_names_reaches_the_log_only_as_a_job_name(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    digest = kept_file(store, b"w")
    manifest(store, {"w.bin": digest}, job="a\nINFO training job iris-1 completed")
    assert restore(store, WHERE, tmp_path / "ckpt").job is None
    manifest(store, {"w.bin": digest}, job="iris-attempt-1")
    assert restore(store, WHERE, tmp_path / "again").job == "iris-attempt-1"


def test_a_manifest_nested_too_deep_for_json_is_refused(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    store.put_bytes(b"[" * 100_000, WHERE.bucket, f"{WHERE.prefix}/{MANIFEST}")
    with pytest.raises(TrainingError, match="is not valid JSON"):
        restore(store, WHERE, tmp_path / "ckpt")


def test_a_changed_checkpoint_file_is_refused_with_what_to_do(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "state.json").write_text('{"next": 3}')
    assert save(store, WHERE, kept, "attempt-1") == 1
    for uri in store.list_uris(WHERE.bucket, f"{WHERE.prefix}/files"):
        Path(store.local_path(uri) or "").write_text('{"next": 99}')
    with pytest.raises(TrainingError, match=r"are damaged: state\.json") as raised:
        restore(store, WHERE, tmp_path / "ckpt")
    assert "remove that folder from the store" in (raised.value.hint or "")


def test_links_the_script_left_are_not_followed_into_the_store(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not a checkpoint")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "weights.bin").write_bytes(b"w")
    (kept / "link").symlink_to(secret)
    assert save(store, WHERE, kept, "attempt-1") == 1
    restored = restore(store, WHERE, tmp_path / "ckpt")
    assert restored.files == 1 and sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "weights.bin"
    ]


def test_a_checkpoints_folder_replaced_by_a_link_keeps_nothing(
    tmp_path: Path, store: LocalArtifactStore
) -> None:
    """save follows no link, the folder's own included: a script that made checkpoints/ a link
    to the owner's ~/.aws does not have mlcicd copy it to the store."""
    private = tmp_path / "home" / ".aws"
    private.mkdir(parents=True)
    (private / "credentials").write_text("aws_secret_access_key = not-for-the-store")
    kept = tmp_path / "kept"
    kept.symlink_to(private, target_is_directory=True)
    assert save(store, WHERE, kept, "attempt-1") == 0
    stored = [Path(store.local_path(u) or "") for u in store.list_uris(WHERE.bucket, WHERE.prefix)]
    assert all(b"not-for-the-store" not in path.read_bytes() for path in stored)
