"""The bounds of mlcicd.yaml's numbers, one wording for each kind: a ``ConfigError`` naming the
file, the key, what it must be and what it got. ``None`` (a key left out) passes."""

from __future__ import annotations

from collections.abc import Sequence

from mlcicd.errors import ConfigError


def shown(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def fail_unless(ok: bool, source: str, key: str, must: str, value: object) -> None:
    if not ok:
        got = shown(value) if isinstance(value, int | float) else repr(value)
        raise ConfigError(f"{must}, got {got}", path=source, key=key)


def positive(source: str, key: str, value: float | None, what: str = "number") -> None:
    if value is not None:
        fail_unless(value > 0, source, key, f"must be a positive {what}", value)


def not_negative(source: str, key: str, value: float | None) -> None:
    if value is not None:
        fail_unless(value >= 0, source, key, "must not be negative", value)


def at_least(
    source: str, key: str, value: float | None, low: float, unit: str = "", name: str = ""
) -> None:
    """``low`` or more; ``name``: the key it is bound by ("at least min_instances (3)")."""
    if value is not None:
        bound = f"{name} ({shown(low)}{unit})" if name else f"{shown(low)}{unit}"
        fail_unless(value >= low, source, key, f"must be at least {bound}", value)


def within(
    source: str,
    key: str,
    value: float | None,
    low: float,
    high: float,
    must: str,
    *,
    above: bool = False,
) -> None:
    """From ``low`` (``above``: exclusive) to ``high``, as ``must`` says in the key's terms."""
    if value is not None:
        ok = (low < value if above else low <= value) and value <= high
        fail_unless(ok, source, key, must, value)


def one_of(source: str, key: str, value: object, choices: Sequence[object], must: str) -> None:
    fail_unless(
        value in choices, source, key, f"{must} one of {', '.join(map(str, choices))}", value
    )
