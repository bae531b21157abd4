"""SageMaker's shapes shared by the backends and the AWS request builders."""

from __future__ import annotations

from mlcicd.shapes import decode_hyperparameters, encode_hyperparameters


def test_hyperparameters_travel_as_json_strings() -> None:
    hps = {"epochs": 3, "lr": 0.1, "opt": "adam", "bn": True, "layers": [1, 2], "cfg": {"a": None}}
    encoded = encode_hyperparameters(hps)
    assert encoded == {
        "epochs": "3",
        "lr": "0.1",
        "opt": '"adam"',
        "bn": "true",
        "layers": "[1, 2]",
        "cfg": '{"a": null}',
    }
    assert decode_hyperparameters(encoded) == hps
    # Written by hand (not by the SDK): values that are not JSON stay strings, as in the toolkit.
    assert decode_hyperparameters({"opt": "adam", "n": "5"}) == {"opt": "adam", "n": 5}
