from __future__ import annotations

import io

import numpy as np
import pytest

from mlcicd.serving import codecs
from mlcicd.serving.codecs import (
    BadRequestError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
    decode,
    encode,
    media_type,
    negotiate,
    preferred_accept,
)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        ("text/csv;header=absent", "text/csv"),
        ("", None),
        (None, None),
    ],
)
def test_media_type_ignores_parameters_and_case(header: str | None, expected: str | None) -> None:
    assert media_type(header) == expected


def test_json_rows_and_single_row() -> None:
    assert decode(b"[[1, 2], [3, 4]]", codecs.JSON).tolist() == [[1, 2], [3, 4]]
    one = decode("[5.1, 3.5, 1.4, 0.2]", codecs.JSON)
    assert one.shape == (1, 4)


def test_csv_one_line_and_many() -> None:
    assert decode("1,2,3\n", codecs.CSV).tolist() == [[1.0, 2.0, 3.0]]
    assert decode("1,2\r\n3,4\r\n", codecs.CSV).tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_npy_round_trip_and_pickles_refused() -> None:
    array = np.arange(8, dtype=np.float32).reshape(2, 4)
    assert np.array_equal(decode(npy(array), codecs.NPY), array)
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequestError, match=r"pickled|cannot be read"):
        decode(objects.getvalue(), codecs.NPY)


def test_jsonlines() -> None:
    assert decode(b"[1, 2]\n[3, 4]\n\n", codecs.JSONLINES).tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"[[1, 2], [3]]", codecs.JSON, "same length"),
        (b"[1, null]", codecs.JSON, "no nulls"),
        (b'{"a": 1}', codecs.JSON, "no nulls, objects"),
        (b"[1, 2", codecs.JSON, "not valid JSON"),
        (b"", codecs.JSON, "empty"),
        (b"7", codecs.JSON, "single value"),
        (b"[]", codecs.JSON, "no values"),
        (b"\xff\xfe", codecs.CSV, "UTF-8"),
        (b"1,2\n3", codecs.CSV, "number of columns"),
        (b"1,abc,3", codecs.CSV, "'abc' in row 1, column 2"),
        (b"1,a\n3,4", codecs.CSV, "could not convert"),
        (b"   ", codecs.CSV, "empty"),
        (b"not numpy", codecs.NPY, "npy"),
        (b"\x93NUMPY\x01\x00garbage", codecs.NPY, "cannot be read"),
    ],
)
def test_undecodable_bodies_are_bad_requests(body: bytes, kind: str, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        decode(body, kind)


def test_unsupported_content_type() -> None:
    with pytest.raises(UnsupportedMediaTypeError, match="text/plain"):
        decode(b"x", "text/plain")


def test_encode_each_type() -> None:
    prediction = np.array([0, 2, 1])
    assert encode(prediction, codecs.JSON) == b"[0,2,1]"
    assert encode(prediction, codecs.CSV) == b"0\n2\n1\n"
    assert encode(np.array([[1.5, 2.0], [3.0, 4.0]]), codecs.CSV) == b"1.5,2.0\n3.0,4.0\n"
    assert np.array_equal(np.load(io.BytesIO(encode(prediction, codecs.NPY))), prediction)
    assert encode(np.array([[1, 2], [3, 4]]), codecs.JSONLINES) == b"[1,2]\n[3,4]\n"
    assert encode({"labels": np.array([1])}, codecs.JSON) == b'{"labels":[1]}'
    assert encode(np.array(["a,b", "c"]), codecs.CSV) == b'"a,b"\nc\n'


def test_encode_refuses_what_the_type_cannot_hold() -> None:
    with pytest.raises(NotAcceptableError, match=r"shape \(2, 2, 2\)"):
        encode(np.zeros((2, 2, 2)), codecs.CSV)
    with pytest.raises(NotAcceptableError):
        encode("text/html", "text/html")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("text/csv", "text/csv"),
        ("text/html, text/csv;q=0.5", "text/csv"),
        ("application/json;q=0.2, application/x-npy", "application/x-npy"),
        ("text/*", "text/csv"),
        ("Application/JSON; charset=utf-8", "application/json"),
    ],
)
def test_negotiate(accept: str | None, expected: str) -> None:
    assert negotiate(accept, "application/json") == expected


def test_negotiate_default_is_sagemakers_not_the_request_type() -> None:
    assert negotiate("*/*", "text/csv") == "text/csv"


def test_not_acceptable() -> None:
    with pytest.raises(NotAcceptableError, match="text/html"):
        negotiate("text/html, image/png", "application/json")


def test_preferred_accept_for_user_output_fn() -> None:
    assert preferred_accept(None, "application/json") == "application/json"
    assert preferred_accept("*/*", "application/json") == "application/json"
    assert preferred_accept("text/plain; charset=utf-8", "application/json") == "text/plain"
