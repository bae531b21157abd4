"""DataProcessing on one record, as SageMaker documents it: the JSONPath subset, the join."""

from __future__ import annotations

import pytest

from mlcicd.transform.dataproc import FilterMismatch, join, parse_path, select, split_output

ROW = ["id-7", "5.1", "3.5", "1.4", "0.2"]
RECORD = {"id": 7, "features": [5.1, 3.5], "meta": {"source": "web"}}


@pytest.mark.parametrize(
    ("path", "record", "selected"),
    [
        ("$", ROW, ROW),
        ("$[1:]", ROW, ROW[1:]),
        ("$[:-1]", ROW, ROW[:-1]),
        ("$[0,-1]", ROW, ["id-7", "0.2"]),
        ("$[2]", ROW, "3.5"),
        ("$.features", RECORD, [5.1, 3.5]),
        ("$.meta.source", RECORD, "web"),
        ("$['id','features']", RECORD, {"id": 7, "features": [5.1, 3.5]}),
        ('$["id"]', RECORD, 7),
        ("$.features[1:]", RECORD, [3.5]),
    ],
)
def test_the_jsonpath_subset_sagemaker_documents(
    path: str, record: object, selected: object
) -> None:
    assert select(parse_path(path), record) == selected


@pytest.mark.parametrize(
    ("path", "record", "message"),
    [
        ("$[9]", ROW, "index 9 is out of range for 5 values"),
        ("$[5:]", ROW, "of 5 values is empty"),
        ("$.label", RECORD, "has no 'label'"),
        ("$.features", ROW, "is a array, not an object"),
        ("$[0]", RECORD, "not an array"),
    ],
)
def test_a_filter_that_matches_nothing_says_why(path: str, record: object, message: str) -> None:
    with pytest.raises(FilterMismatch, match=message.replace("[", r"\[")):
        select(parse_path(path), record)


@pytest.mark.parametrize("path", ["features", "$..x", "$[a]", "$[0].x", "$.*"])
def test_what_is_not_in_the_subset_is_refused(path: str) -> None:
    with pytest.raises(ValueError):
        parse_path(path)


def test_join_appends_to_a_row_and_adds_sagemaker_output_to_an_object() -> None:
    assert join(["1", "2"], ["setosa"], "text/csv") == ["1", "2", "setosa"]
    assert join(["1", "2"], "setosa", "text/csv") == ["1", "2", "setosa"]
    assert join({"id": 1}, 0, "application/jsonlines") == {"id": 1, "SageMakerOutput": 0}
    assert join([1, 2], 0, "application/jsonlines") == {
        "SageMakerInput": [1, 2],
        "SageMakerOutput": 0,
    }


def test_an_answer_splits_into_one_value_per_record() -> None:
    assert split_output(b"0\n2\n", "text/csv", 2) == [["0"], ["2"]]
    assert split_output(b'{"predictions": [0, 2]}', "application/json", 2) == [0, 2]
    assert split_output(b"[0, 2]", "application/json", 2) == [0, 2]
    assert split_output(b'{"a": 1}\n{"a": 2}\n', "application/jsonlines", 2) == [
        {"a": 1},
        {"a": 2},
    ]
    with pytest.raises(ValueError, match="answered 1 records for 2"):
        split_output(b"0\n", "text/csv", 2)
