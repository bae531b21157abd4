from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mlcicd.errors import NotFoundError, StateError
from mlcicd.state import SCHEMA_VERSION, State

STAGES = ["source", "build", "train"]


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(tmp_path / "state.db")


def _package(state: State, sha: str, status: str = "Approved") -> int:
    return state.register_model_package(
        group_name="iris",
        status=status,
        model_uri=f"file:///m/{sha}",
        model_sha256=sha,
        metrics={"accuracy": 0.9},
        training_job="job",
        build_digest="b",
        commit_sha="c",
        run_id=None,
        lineage={},
    ).version


def test_database_is_wal(state: State) -> None:
    mode = sqlite3.connect(state.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_run_lifecycle(state: State) -> None:
    run = state.create_run(pipeline="iris", project_dir="/p", stages=STAGES)
    assert run.status == "Running"
    assert [s.status for s in state.stages(run.id)] == ["Pending"] * 3
    state.start_stage(run.id, "source", log_path="/l")
    state.finish_stage(run.id, "source", "Succeeded", outputs={"commit": "abc"})
    state.start_stage(run.id, "build")
    state.finish_stage(run.id, "build", "Failed", message="boom")
    state.finish_run(run.id, "Failed", failed_stage="build", failure_reason="boom")
    run = state.get_run(run.id)
    assert (run.status, run.failed_stage, run.failure_reason) == ("Failed", "build", "boom")
    assert [s.status for s in state.stages(run.id)] == ["Succeeded", "Failed", "Skipped"]
    assert state.last_outputs("source", key="commit", value="abc") == {"commit": "abc"}
    assert state.last_outputs("source", key="commit", value="zzz") is None


def test_model_versions_count_up_per_group(state: State) -> None:
    assert [_package(state, s) for s in ("a", "b", "c")] == [1, 2, 3]
    assert state.find_model_package("iris", "b").version == 2  # type: ignore[union-attr]
    state.set_model_package_status("iris", 2, "Rejected", reason="gate")
    assert state.get_model_package("iris", 2).status == "Rejected"
    with pytest.raises(NotFoundError):
        state.get_model_package("iris", 9)


def test_a_run_whose_process_died_is_failed_with_the_reason(state: State, tmp_path: Path) -> None:
    # A real process creates a run and is killed before it finishes it.
    code = (
        "import sys, os; from pathlib import Path; from mlcicd.state import State;"
        f"s = State(Path({str(tmp_path / 'state.db')!r})); r = s.create_run(pipeline='p', project_dir='/', stages=['a']);"
        "s.start_stage(r.id, 'a'); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    run = state.list_runs()[0]
    assert run.status == "Failed"
    assert "exited without finishing the run" in (run.failure_reason or "")
    assert [s.status for s in state.stages(run.id)] == ["Failed"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StateError, match="newer mlcicd"):
        State(tmp_path / "state.db")


def test_unknown_run(state: State) -> None:
    with pytest.raises(NotFoundError, match="run 7 does not exist"):
        state.get_run(7)


def test_a_models_baseline_is_recorded_and_replaced(state: State) -> None:
    from mlcicd.state_monitor import ModelBaseline

    _package(state, "a")
    assert state.get_baseline("iris", 1) is None
    first = ModelBaseline(
        group_name="iris",
        version=1,
        statistics_uri="file:///s1",
        statistics_sha256="1",
        constraints_uri="file:///c1",
        constraints_sha256="2",
        dataset={"item_count": 150},
    )
    state.record_baseline(first)
    got = state.get_baseline("iris", 1)
    assert (
        got is not None
        and got.dataset == {"item_count": 150}
        and got.arn == "iris/1"
        and got.created_at > 0
    )
    state.record_baseline(
        ModelBaseline(
            group_name="iris",
            version=1,
            statistics_uri="file:///s2",
            statistics_sha256="3",
            constraints_uri="file:///c2",
            constraints_sha256="4",
        )
    )
    assert state.get_baseline("iris", 1).statistics_uri == "file:///s2"  # type: ignore[union-attr]


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


def test_a_schema_4_database_gains_body_digests_and_knows_a_replay(tmp_path: Path) -> None:
    from mlcicd.state_service import Delivery

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
