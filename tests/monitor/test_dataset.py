"""Rows from a training channel's CSV files and from captured request bodies."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from mlcicd.errors import MonitorError
from mlcicd.monitor import dataset
from mlcicd.monitor.dataset import UnreadableBody, body_rows, read_channel
from tests.conftest import IRIS


def test_the_iris_channel_has_a_header_and_its_label_is_left_out() -> None:
    table = read_channel(IRIS / "data", channel="training", label="species")
    assert table.names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert (table.rows, table.files, table.label) == (150, ["iris.csv"], "species")
    assert table.columns[0][:2] == [5.1, 4.9]


def test_a_headerless_channel_names_columns_as_sagemaker_does(tmp_path: Path) -> None:
    (tmp_path / "part-1.csv").write_text("0,5.1,3.5\n1,6.2,2.9\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part-2.csv").write_text("2,7.0,3.1\n\n")
    (tmp_path / "notes.txt").write_text("not data")
    table = read_channel(tmp_path, channel="training", label="_c0")
    assert table.names == ["_c1", "_c2"]
    assert table.columns == [[5.1, 6.2, 7.0], [3.5, 2.9, 3.1]]
    assert table.files == ["part-1.csv", "sub/part-2.csv"]


def test_text_columns_do_not_make_a_header(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("red,1.5\nblue,2.5\n")
    table = read_channel(tmp_path, channel="training", label=None)
    assert table.names == ["_c0", "_c1"] and table.rows == 2


def test_a_label_that_is_not_a_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(
        MonitorError, match=r"monitor.label 'target' is not a column.*sepal_length, sepal_width"
    ):
        read_channel(IRIS / "data", channel="training", label="target")


def test_a_large_channel_is_sampled_uniformly_and_the_same_way_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset, "MAX_ROWS", 50)
    (tmp_path / "big.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(1000)))
    table = read_channel(tmp_path, channel="train", label="y")
    again = read_channel(tmp_path, channel="train", label="y")
    assert (table.rows, table.seen, table.names) == (50, 1000, ["x"])
    assert table.columns == again.columns  # the same data gives the same baseline
    xs = [float(x) for x in table.columns[0] if x is not None]
    assert len(set(xs)) == 50 and max(xs) > 500  # from the whole file, not its first rows


def test_a_channel_without_csv_says_so(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(MonitorError, match=r"holds no \.csv file"):
        read_channel(tmp_path / "images", channel="images", label=None)
    with pytest.raises(MonitorError, match="does not exist"):
        read_channel(tmp_path / "nowhere", channel="training", label=None)


@pytest.mark.parametrize(
    ("content_type", "data", "rows"),
    [
        (
            "text/csv",
            "5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n",
            [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
        ),
        ("text/csv; charset=utf-8", "5.1,,red\n", [[5.1, None, "red"]]),
        ("application/json", "[5.1, 3.5, 1.4, 0.2]", [[5.1, 3.5, 1.4, 0.2]]),
        ("application/json", "[[5.1, 3.5], [6.7, 3.0]]", [[5.1, 3.5], [6.7, 3.0]]),
        ("application/json", '{"instances": [[5.1, 3.5]]}', [[5.1, 3.5]]),
        (
            "application/json",
            '[{"a": 1, "b": "x"}, {"a": null}]',
            [{"a": 1.0, "b": "x"}, {"a": None}],
        ),
        ("application/json", "7", [[7.0]]),
        ("application/jsonlines", '[1, 2]\n{"a": 3}\n', [[1.0, 2.0], {"a": 3.0}]),
    ],
)
def test_captured_bodies_are_read_as_the_default_input_fn_reads_them(
    content_type: str, data: str, rows: list
) -> None:
    assert body_rows(content_type, data, "CSV" if "csv" in content_type else "JSON") == rows


def test_npy_bodies_are_read_from_base64() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[5.1, 3.5], [6.7, 3.0]]))
    data = base64.b64encode(buffer.getvalue()).decode()
    assert body_rows("application/x-npy", data, "BASE64") == [[5.1, 3.5], [6.7, 3.0]]


@pytest.mark.parametrize(
    ("content_type", "data", "encoding", "why"),
    [
        ("application/json", "[1, 2", "JSON", "not valid JSON"),
        ("image/png", "aGVsbG8=", "BASE64", "content type image/png is not read"),
        ("application/json", "%%%", "BASE64", "not valid base64"),
        ("application/x-npy", "aGVsbG8=", "BASE64", "not a .npy array"),
        ("text/csv", base64.b64encode(b"\xff\xfe").decode(), "BASE64", "not UTF-8"),
    ],
)
def test_unreadable_bodies_say_why(content_type: str, data: str, encoding: str, why: str) -> None:
    with pytest.raises(UnreadableBody, match=why):
        body_rows(content_type, data, encoding)
