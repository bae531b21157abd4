"""Rows of data: a training channel's CSV files, and the request bodies an endpoint captured.

A training channel is read as a training script reads it: every ``*.csv`` below the channel's
directory (or the one file it names), in name order. A file has a header when its first row
holds no number and its second row holds one (so the iris example's header is seen, and a
headerless file of numbers is not mistaken for one); without a header, columns are named
``_c0``, ``_c1``… as SageMaker names them. The label column, when known, is left out.

A captured request body becomes rows as the default ``input_fn`` reads it: ``text/csv`` one row
per line; ``application/json`` a row, a list of rows, or ``{"instances": rows}``; JSON Lines
one row per line; ``application/x-npy`` an array of one or two dimensions. A row is a list
(positional: column ``i`` is the baseline's feature ``i``) or a JSON object (by name).
"""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlcicd.errors import MonitorError
from mlcicd.monitor.statistics import Cell, to_cell

Row = list[Cell] | dict[str, Cell]
# A baseline describes the training data's distributions; a uniform sample this large gives
# each statistic to well under 1 % and keeps the register stage's memory and time bounded
# whatever the data's size (every row is still read, once, streamed).
MAX_ROWS = 100_000


@dataclass
class Table:
    """Columns of cells by name, in order, and how many rows there are."""

    names: list[str]
    columns: list[list[Cell]]
    rows: int
    files: list[str] = field(default_factory=list)
    label: str | None = None  # the column left out, if it was found
    seen: int = 0  # rows read; more than ``rows`` when they were sampled down to MAX_ROWS


def positional_name(index: int) -> str:
    return f"_c{index}"


def csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.csv") if p.is_file())


def read_channel(path: Path, *, channel: str, label: str | None) -> Table:
    """The training channel at ``path`` as a table, its ``label`` column left out."""
    files = csv_files(path) if path.exists() else []
    if not files:
        where = "does not exist" if not path.exists() else "holds no .csv file"
        raise MonitorError(
            f"training channel {channel!r} ({path}) {where}",
            hint="a data-quality baseline is computed from CSV data; set monitor.channel to a "
            "channel that has some",
        )
    names: list[str] = []
    sample: list[dict[str, Cell]] = []  # a uniform sample of at most MAX_ROWS rows (reservoir)
    draw = random.Random(0)  # the same data gives the same baseline
    seen = 0
    for file in files:
        for row in _csv_rows(file, channel):
            names.extend(name for name in row if name not in names)
            seen += 1
            if len(sample) < MAX_ROWS:
                sample.append(row)
            elif (slot := draw.randrange(seen)) < MAX_ROWS:
                sample[slot] = row
    if not sample:
        raise MonitorError(f"training channel {channel!r} ({path}) holds no rows of data")
    columns = {name: [row.get(name) for row in sample] for name in names}
    rows = len(sample)
    found = None
    if label is not None:
        if label not in columns:
            raise MonitorError(
                f"monitor.label {label!r} is not a column of training channel {channel!r}",
                hint=f"its columns: {', '.join(names)}",
            )
        found = label
        names.remove(label)
    return Table(
        names=names,
        columns=[columns[n] for n in names],
        rows=rows,
        files=[str(f.relative_to(path)) if f != path else f.name for f in files],
        label=found,
        seen=seen,
    )


def _csv_rows(file: Path, channel: str) -> Iterator[dict[str, Cell]]:
    try:
        with open(file, encoding="utf-8-sig", newline="") as fh:
            lines = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MonitorError(f"cannot read {file} (training channel {channel!r}): {exc}") from exc
    header: list[str] = []
    if _has_header(lines):
        header = [cell.strip() or positional_name(i) for i, cell in enumerate(lines[0])]
        lines = lines[1:]
    for line in lines:
        yield {
            (header[i] if i < len(header) else positional_name(i)): to_cell(cell)
            for i, cell in enumerate(line)
        }


def _has_header(lines: list[list[str]]) -> bool:
    if len(lines) < 2:
        return False
    first = [to_cell(c) for c in lines[0]]
    second = [to_cell(c) for c in lines[1]]
    return not any(isinstance(c, float) for c in first) and any(
        isinstance(c, float) for c in second
    )


# --- captured request bodies ---------------------------------------------------------------------


class UnreadableBody(ValueError):
    """A captured body that cannot be read as rows; the message says why, briefly."""


def body_rows(content_type: str, data: str, encoding: str) -> list[Row]:
    """The rows of one captured request body (``captureData.endpointInput``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    raw: bytes | str = data
    if encoding.upper() == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise UnreadableBody("BASE64 data is not valid base64") from exc
    if media == "application/x-npy":
        return _npy_rows(raw if isinstance(raw, bytes) else raw.encode("latin-1"))
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableBody(f"{media} body is not UTF-8") from exc
    if media == "text/csv":
        return [
            [to_cell(c) for c in row]
            for row in csv.reader(io.StringIO(raw))
            if any(c.strip() for c in row)
        ]
    if media == "application/json":
        return _json_rows(_load(raw, media))
    if media in ("application/jsonlines", "application/x-jsonlines"):
        return [_json_row(_load(line, media)) for line in raw.splitlines() if line.strip()]
    raise UnreadableBody(
        f"content type {content_type or '(none)'} is not read (CSV, JSON, JSON Lines and NPY are)"
    )


def _load(text: str, media: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UnreadableBody(f"{media} body is not valid JSON") from exc


def _json_rows(value: Any) -> list[Row]:
    if isinstance(value, dict) and isinstance(value.get("instances"), list):
        value = value["instances"]
    if isinstance(value, list) and value and all(isinstance(v, list | dict) for v in value):
        return [_json_row(v) for v in value]
    return [_json_row(value)]


def _json_row(value: Any) -> Row:
    if isinstance(value, dict):
        return {str(k): to_cell(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cell(v) for v in value]
    return [to_cell(value)]


def _npy_rows(raw: bytes) -> list[Row]:
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UnreadableBody("application/x-npy body is not a .npy array") from exc
    if not isinstance(array, np.ndarray) or array.ndim not in (1, 2):
        raise UnreadableBody("application/x-npy body is not an array of one or two dimensions")
    rows = array.reshape(1, -1) if array.ndim == 1 else array
    return [[to_cell(v) for v in row] for row in rows.tolist()]


__all__ = [
    "Row",
    "Table",
    "UnreadableBody",
    "body_rows",
    "csv_files",
    "positional_name",
    "read_channel",
]
