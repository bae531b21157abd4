"""What a person reads of an endpoint, whichever backend described it."""

from __future__ import annotations

from mlcicd.endpoints.base import scaling_lines


def test_the_scaling_reads_as_workers_rate_and_last_change() -> None:
    lines = dict(
        scaling_lines(
            {
                "min_instances": 1,
                "max_instances": 4,
                "target_invocations_per_instance": 600.0,
                "current_instances": 3,
                "desired_instances": 3,
                "invocations_per_instance": 512.5,
                "last_change": {"at": "T", "from": 1, "to": 3, "reason": "1500 > target 600"},
            }
        )
    )
    assert lines == {
        "workers": "3 (min 1, max 4, wanted 3)",
        "invocations/worker": "512.5 a minute (target 600)",
        "last scaling": "T: 1 → 3, 1500 > target 600",
    }


def test_no_policy_no_lines() -> None:
    assert scaling_lines(None) == []
