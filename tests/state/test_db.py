"""The state on disk: WAL, synced before a write returns, the owner's alone, opened without
disturbing the locks of the process's other connections; older schemas migrated, newer
ones refused."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.errors import StateError
from mlcicd.state import SCHEMA_VERSION, Delivery, MinuteMetrics, State, TransformJobRecord

STAGES = ["source", "build", "train"]


def test_database_is_wal(state: State) -> None:
    mode = sqlite3.connect(state.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_writes_are_synced_before_they_return(state: State) -> None:
    """synchronous=FULL (2): a queued run, an approval, a registered model survive a power loss."""
    assert state.db.connection.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_state_directory_and_database_are_the_owners_alone(tmp_path: Path) -> None:
    state = State(tmp_path / "new" / "state.db")
    state.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (state.path.parent, *state.path.parent.iterdir())
    }
    assert modes == {"new": 0o700, "state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}


def test_a_looser_state_directory_and_database_are_tightened(tmp_path: Path) -> None:
    """As an older mlcicd left them (0755, 0644): readable by every user of the machine."""
    old = tmp_path / "old"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    State(old / "state.db").close()
    os.chmod(old, 0o755)
    os.chmod(old / "state.db", 0o644)
    State(old / "state.db").close()
    assert [stat.S_IMODE(p.stat().st_mode) for p in (old, old / "state.db")] == [0o700, 0o600]


def test_a_state_directory_that_cannot_be_created_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="cannot create state database"):
        State(tmp_path / "file" / "state.db")


def test_opening_the_state_leaves_the_other_connections_locks_alone(tmp_path: Path) -> None:
    """Closing any descriptor of the database file drops every lock this process holds on it.
    Were opening a State to do that, the next process to close its connection would find
    itself the last one, checkpoint and delete the WAL under the service: a malformed database."""
    path = tmp_path / "state.db"
    first = State(path)
    first.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    State(path).close()
    code = (
        f"import sqlite3; c = sqlite3.connect({str(path)!r});"
        " c.execute('SELECT 1 FROM runs').fetchall(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert path.with_name("state.db-wal").exists()  # still ours: the other process was not the last
    assert first.get_run(1).pipeline == "iris"


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer mlcicd"):
        State(tmp_path / "state.db")


@pytest.mark.parametrize(
    ("version", "table"), [(2, "model_baselines"), (3, "monitoring_executions")]
)
def test_an_older_database_gains_the_tables_of_later_schemas(
    tmp_path: Path, version: int, table: str
) -> None:
    State(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute(f"DROP TABLE {table}")
    db.execute(f"PRAGMA user_version={version}")
    db.close()
    state = State(tmp_path / "state.db")
    assert state.get_baseline("iris", 1) is None and state.monitoring_executions("iris") == []
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("PRAGMA user_version").fetchone()[0]
        == SCHEMA_VERSION
    )


def older(path: Path, version: int, table: str) -> State:
    """A database of schema ``version`` (without ``table``, which came later), opened."""
    State(path).close()
    db = sqlite3.connect(path)
    db.execute(f"DROP TABLE {table}")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    return State(path)


def test_a_schema_7_database_gains_the_endpoint_metric_history(tmp_path: Path) -> None:
    state = older(tmp_path / "state.db", 7, "endpoint_metrics")
    row = MinuteMetrics("ep", 120, "AllTraffic", 5, 1, 0, model_p99_ms=2.5, share=1.0)
    state.record_endpoint_minute([row], now=180.0)
    assert state.endpoint_metric_history("ep", since=60) == [row]
    assert state.endpoint_metric_history("ep", since=121) == []
    state.record_endpoint_minute([], now=120 + 7 * 86400 + 1)  # nothing new: nothing pruned
    state.record_endpoint_minute(
        [MinuteMetrics("ep", 8 * 86400, "AllTraffic", 1, 0, 0)], now=8 * 86400
    )
    assert [r.minute for r in state.endpoint_metric_history("ep", since=0)] == [8 * 86400]
    # A long window's chart sums minutes into buckets: counts added, p50s weighed, worst p99.
    base = 9 * 86400
    state.record_endpoint_minute(
        [
            MinuteMetrics("ep", base + 60 * i, "A", n, i, 0, model_p50_ms=p50, model_p99_ms=p99)
            for i, (n, p50, p99) in enumerate(((10, 1.0, 5.0), (30, 3.0, 9.0), (0, None, None)))
        ],
        now=base,
    )
    summed = state.endpoint_metric_history("ep", since=base, bucket=180)
    assert [(r.minute, r.invocations, r.errors_4xx) for r in summed] == [(base, 40, 3)]
    assert summed[0].model_p50_ms == 2.5 and summed[0].model_p99_ms == 9.0
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("PRAGMA user_version").fetchone()[0]
        == SCHEMA_VERSION
        == 8
    )


def test_a_schema_4_database_gains_body_digests_and_knows_a_replay(tmp_path: Path) -> None:
    State(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("DROP TABLE webhook_bodies")
    db.execute(
        "INSERT INTO webhook_deliveries (delivery_id, event, received_at) VALUES ('old', 'push', 0)"
    )
    db.execute("PRAGMA user_version=4")
    db.commit()
    db.close()
    state = State(tmp_path / "state.db")
    assert not state.record_delivery(
        Delivery(id="old", event="push", body_sha256="a")
    )  # kept across the upgrade
    assert state.record_delivery(Delivery(id="first", event="push", body_sha256="b"))
    assert not state.record_delivery(Delivery(id="replayed", event="push", body_sha256="b"))
    run, _ = state.enqueue_run(
        pipeline="p",
        project_dir="/",
        ref="c" * 40,
        commit_sha="c" * 40,
        trigger={},
        delivery=Delivery(id="again", event="push", body_sha256="b"),
    )
    assert run is None and state.list_runs() == []
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("PRAGMA user_version").fetchone()[0]
        == SCHEMA_VERSION
    )


def test_a_schema_5_database_gains_the_processing_jobs(tmp_path: Path) -> None:
    State(tmp_path / "state.db").close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("DROP TABLE processing_jobs")
    db.execute("PRAGMA user_version=5")
    db.close()
    state = State(tmp_path / "state.db")
    assert state.processing_jobs(run_id=1) == []
    assert state.find_completed_processing_job("key") is None
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("PRAGMA user_version").fetchone()[0]
        == SCHEMA_VERSION
    )


def test_a_schema_6_database_gains_transform_jobs(tmp_path: Path) -> None:
    state = older(tmp_path / "state.db", 6, "transform_jobs")
    assert state.transform_jobs() == []
    state.create_transform_job(
        TransformJobRecord(
            name="j",
            backend="local",
            status="InProgress",
            failure_reason=None,
            model_group="iris",
            model_version=1,
            model_sha256="a" * 64,
            input_uri="in",
            output_uri="out",
        )
    )
    assert [j.name for j in state.transform_jobs("iris", 1)] == ["j"]
    assert state.processing_jobs(run_id=1) == []  # schema 6's table kept as it was
    assert (
        sqlite3.connect(tmp_path / "state.db").execute("PRAGMA user_version").fetchone()[0]
        == SCHEMA_VERSION
    )


def test_threads_sharing_the_state_never_nest_their_transactions(state: State) -> None:
    """A run's parallel processing steps (and the service's threads) share one connection:
    each transaction must be whole before another thread's begins."""
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(n: int) -> None:
        start.wait()
        try:
            for i in range(25):
                state.add_event("test", f"thread-{n}", {"i": i})
                state.recent_events(5)
        except BaseException as exc:  # the test reports what any thread hit
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]
    assert len(state.events(limit=1000)) == 100
