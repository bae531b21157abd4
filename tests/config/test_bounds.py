"""The bounds of mlcicd.yaml's numbers: one wording for each kind, naming the key and what it
got; an optional key left out (None) passes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mlcicd.config.bounds import at_least, not_negative, one_of, positive, within
from mlcicd.errors import ConfigError


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (
            lambda: positive("f.yaml", "a.b", 0, "number of seconds"),
            "must be a positive number of seconds, got 0",
        ),
        (lambda: positive("f.yaml", "a.b", -0.5), "must be a positive number, got -0.5"),
        (lambda: not_negative("f.yaml", "a.b", -1), "must not be negative, got -1"),
        (lambda: at_least("f.yaml", "a.b", 0, 1, " second"), "must be at least 1 second, got 0"),
        (
            lambda: at_least("f.yaml", "a.b", 2, 3, name="min_instances"),
            "must be at least min_instances (3), got 2",
        ),
        (lambda: within("f.yaml", "a.b", 0, 0, 1, "above 0", above=True), "above 0, got 0"),
        (lambda: within("f.yaml", "a.b", 1.5, 0, 1, "0 to 1"), "0 to 1, got 1.5"),
        (
            lambda: one_of("f.yaml", "a.b", 1000, (1024, 2048), "is"),
            "is one of 1024, 2048, got 1000",
        ),
        (lambda: one_of("f.yaml", "a.b", "x", ("y",), "is"), "is one of y, got 'x'"),
    ],
)
def test_a_number_out_of_bounds_names_the_file_the_key_and_what_it_got(
    check: Callable[[], None], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        check()
    assert caught.value.headline == f"f.yaml: a.b: {message}"


def test_the_bounds_themselves_and_a_key_left_out_pass() -> None:
    positive("f.yaml", "a.b", None)
    not_negative("f.yaml", "a.b", 0)
    at_least("f.yaml", "a.b", 1, 1)
    within("f.yaml", "a.b", 1, 0, 1, "0 to 1", above=True)
    within("f.yaml", "a.b", 0, 0, 1, "0 to 1")
    one_of("f.yaml", "a.b", 2048, (1024, 2048), "is")
