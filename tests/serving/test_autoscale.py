"""Target tracking as plain data: the rate over the window, the cooldowns, the bounds.

The supervisor resizing real workers under real load is in test_supervisor.py.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from mlcicd.serving.autoscale import Autoscaler
from mlcicd.serving.config import AutoscalingSpec, ServingConfig, VariantSpec

SPEC = AutoscalingSpec(
    min_instances=1,
    max_instances=4,
    target_invocations_per_instance=600,  # 10 a second per worker
    scale_out_cooldown=5.0,
    scale_in_cooldown=30.0,
    window_seconds=10.0,
)


def fed(per_second: float, *, seconds: int = 11, start: int = 0) -> Autoscaler:
    """An autoscaler that saw ``per_second`` invocations a second for ``seconds``."""
    scaler = Autoscaler()
    for t in range(seconds):
        scaler.observe(float(start + t), int(per_second * t), SPEC.window_seconds)
    return scaler


def test_nothing_is_decided_before_a_full_window() -> None:
    scaler = fed(1000, seconds=10)  # t = 0 .. 9: not yet ten seconds
    assert scaler.rate is None and scaler.decide(SPEC, 1, 9.0) is None
    scaler.observe(10.0, 10_000, SPEC.window_seconds)
    assert scaler.rate == pytest.approx(60_000)


def test_scales_out_at_once_to_what_the_load_needs_within_max() -> None:
    scaler = fed(25)  # 1500 a minute: three workers at 600
    decision = scaler.decide(SPEC, 1, 10.0)
    assert decision is not None and decision.workers == 3
    assert decision.reason == (
        "1500 invocations per worker per minute over the last 10s > target 600"
    )
    assert fed(1000).decide(SPEC, 1, 10.0).workers == 4  # type: ignore[union-attr]


def test_a_scale_out_waits_for_its_cooldown() -> None:
    scaler = fed(25)
    scaler.changed(1, 3, "load", 10.0)
    scaler.observe(11.0, 1000, SPEC.window_seconds)  # the load doubled: 4 would be needed
    assert scaler.decide(SPEC, 3, 11.0) is None  # within scale_out_cooldown
    scaler.observe(15.0, 2000, SPEC.window_seconds)
    assert scaler.decide(SPEC, 3, 15.0).workers == 4  # type: ignore[union-attr]


def test_scales_in_one_worker_at_a_time_after_its_cooldown() -> None:
    scaler = fed(1)  # 60 a minute: one worker is plenty
    scaler.changed(3, 4, "load", 0.0)
    assert scaler.decide(SPEC, 4, 10.0) is None  # within scale_in_cooldown of the last change
    decision = scaler.decide(SPEC, 4, 30.0)
    assert decision is not None and decision.workers == 3 and "< target 600" in decision.reason
    scaler.changed(4, 3, decision.reason, 30.0)
    assert scaler.decide(SPEC, 3, 59.0) is None
    assert scaler.decide(SPEC, 3, 60.0).workers == 2  # type: ignore[union-attr]


def test_at_the_target_it_stays() -> None:
    scaler = fed(20)  # exactly two workers' worth
    assert scaler.decide(SPEC, 2, 100.0) is None and scaler.desired == 2


def test_a_count_outside_the_bounds_is_brought_back_at_once() -> None:
    decision = Autoscaler().decide(SPEC, 6, 0.0)
    assert decision is not None and decision.workers == 4 and "outside" in decision.reason


def test_the_status_record_says_the_rate_per_worker_and_the_last_change() -> None:
    scaler = fed(25)
    scaler.changed(1, 3, "1500 > 600", 10.0)
    record = scaler.record(SPEC, 3)
    assert record["current_instances"] == 3 and record["invocations_per_instance"] == 500
    assert record["last_change"]["from"] == 1 and record["last_change"]["reason"] == "1500 > 600"
    assert record["max_instances"] == 4 and record["scale_in_cooldown"] == 30.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"min_instances": 0}, "autoscaling.min_instances: at least 1, got 0"),
        ({"max_instances": 0}, "autoscaling.max_instances: at least min_instances (1), got 0"),
        ({"target_invocations_per_instance": 0}, "target_invocations_per_instance"),
        ({"scale_in_cooldown": -1}, "autoscaling.scale_in_cooldown: a finite number of seconds"),
        ({"scale_out_cooldown": math.inf}, "autoscaling.scale_out_cooldown: a finite number"),
        ({"window_seconds": math.inf}, "autoscaling.window_seconds: a finite, positive number"),
        ({"window_seconds": math.nan}, "autoscaling.window_seconds: a finite, positive number"),
        ({"max_instances": 33}, "autoscaling.max_instances: at most 32, got 33"),
    ],
)
def test_a_bad_policy_is_refused_with_its_key(change: dict[str, float], message: str) -> None:
    fields = {**SPEC.to_dict(), **change}
    with pytest.raises(ValueError, match=re.escape(message)):
        ServingConfig(
            name="c",
            variants=(VariantSpec(name="v", model_dir="/m", code_dir="/c"),),
            autoscaling=AutoscalingSpec(**fields),
        )


def test_the_policy_travels_in_config_json_and_bounds_the_first_workers() -> None:
    config = ServingConfig(
        name="c",
        variants=(VariantSpec(name="v", model_dir="/m", code_dir="/c"),),
        workers=8,
        autoscaling=SPEC,
    )
    again = ServingConfig.from_dict(config.to_dict())
    assert again.autoscaling == SPEC and again.initial_workers == 4
    with pytest.raises(ValueError, match="'max_instances' has the wrong type"):
        ServingConfig.from_dict({**config.to_dict(), "autoscaling": {"max_instances": "4"}})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_config_json_holds_finite_numbers_only(number: str) -> None:
    """json.loads reads NaN and Infinity: a hand-edited config.json must not start an endpoint
    whose scaling window, or any other number, never ends."""
    config = ServingConfig(
        name="c", variants=(VariantSpec(name="v", model_dir="/m", code_dir="/c"),), autoscaling=SPEC
    )
    text = json.dumps(config.to_dict()).replace(
        '"window_seconds": 10.0', f'"window_seconds": {number}'
    )
    assert number in text
    with pytest.raises(ValueError, match=r"'window_seconds' must be a finite number"):
        ServingConfig.from_dict(json.loads(text), where="config.json")
    with pytest.raises(ValueError, match=r"'startup_timeout' must be a finite number"):
        ServingConfig.from_dict({**config.to_dict(), "startup_timeout": json.loads(number)})
