"""The bounds of mlcicd.yaml's numbers: each check fails as a ``ConfigError`` naming the file,
the key, what the key must be and what it got — one wording for each kind of bound, for
``checks`` and ``infrastructure`` alike. A value of ``None`` (an optional key left out)
passes every check.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlcicd.errors import ConfigError


def shown(value: float) -> str:
    """A number as the config's reader wrote it: ``3``, ``0.5``, ``1e-05``."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def fail_unless(ok: bool, source: str, key: str, must: str, value: object) -> None:
    """``ConfigError`` "``key``: ``must``, got ``value``" unless ``ok``."""
    if not ok:
        got = shown(value) if isinstance(value, int | float) else repr(value)
        raise ConfigError(f"{must}, got {got}", path=source, key=key)


def positive(source: str, key: str, value: float | None, what: str = "number") -> None:
    """Above 0: "must be a positive number of seconds, got 0"."""
    if value is not None:
        fail_unless(value > 0, source, key, f"must be a positive {what}", value)


def not_negative(source: str, key: str, value: float | None) -> None:
    """0 or more: "must not be negative, got -1"."""
    if value is not None:
        fail_unless(value >= 0, source, key, "must not be negative", value)


def at_least(
    source: str, key: str, value: float | None, low: float, unit: str = "", name: str = ""
) -> None:
    """``low`` or more: "must be at least 1 second, got 0", or with the key it is bound by
    (``name``): "must be at least min_instances (3), got 2"."""
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
    """From ``low`` (``above``: exclusive) to ``high``; ``must`` says so in the key's own terms
    ("SageMaker's MaxConcurrency is 1 to 200")."""
    if value is not None:
        ok = (low < value if above else low <= value) and value <= high
        fail_unless(ok, source, key, must, value)


def one_of(source: str, key: str, value: object, choices: Sequence[object], must: str) -> None:
    """One of ``choices``: "``must`` one of 1024, 2048, …, got 1000"."""
    fail_unless(
        value in choices, source, key, f"{must} one of {', '.join(map(str, choices))}", value
    )
