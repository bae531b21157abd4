from __future__ import annotations

from mlcicd.state import State


def register_package(state: State, sha: str, status: str = "Approved") -> int:
    """Register a model of group ``iris`` whose sha256 is ``sha``; its version."""
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
