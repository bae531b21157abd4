"""SageMaker's DataProcessing on one record: InputFilter, JoinSource, OutputFilter.

A CSV row is read as a JSON array of its cells (strings, as SageMaker keeps them), a JSON
Lines record as its JSON value. The JSONPath expressions are the subset SageMaker documents:

    $                       the whole record
    $[1:]  $[:-1]  $[2:5]   a slice of an array
    $[0,-1]  $[3]           elements by index (negative from the end)
    $.features  $.a.b       a member of an object (nested)
    $['id','SageMakerOutput']
                            several members of an object

An index or member that is not there is an error (SageMaker fails the job too), raised as
:class:`FilterMismatch` so the job can name the filter. ``JoinSource: Input`` appends the
output's cells to a CSV row, adds ``SageMakerOutput`` to a JSON object, and wraps anything
else as ``{"SageMakerInput": …, "SageMakerOutput": …}``.

Standard library only: this runs in the job's worker, in the model's environment.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

_MEMBER = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_BRACKET = re.compile(r"\[([^\]]*)\]")
_SLICE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*$")
_QUOTED = re.compile(r"""^\s*(?:'([^']*)'|"([^"]*)")\s*$""")


class FilterMismatch(ValueError):
    """A filter selected nothing from a record: an index out of range, a member not there."""


@dataclass(frozen=True)
class Step:
    """One selector: ``kind`` is member, members, indexes or slice."""

    kind: str
    keys: tuple[Any, ...]


def parse_path(expression: str) -> tuple[Step, ...]:
    """The steps of a JSONPath expression; ``ValueError`` says what is not understood."""
    text = expression.strip()
    if not text.startswith("$"):
        raise ValueError("a JSONPath expression starts with $")
    steps: list[Step] = []
    rest = text[1:]
    while rest:
        if m := _MEMBER.match(rest):
            steps.append(Step("member", (m.group(1),)))
        elif m := _BRACKET.match(rest):
            steps.append(_bracket(m.group(1)))
        else:
            raise ValueError(f"cannot read {rest!r}")
        rest = rest[m.end() :]
    for step in steps[:-1]:
        if step.kind != "member":
            raise ValueError("only the last selector may pick several values")
    return tuple(steps)


def _bracket(inside: str) -> Step:
    if m := _SLICE.match(inside):
        start, stop = (int(g) if g is not None else None for g in m.groups())
        return Step("slice", (start, stop))
    parts = inside.split(",")
    quoted = [_QUOTED.match(p) for p in parts]
    if all(quoted):
        names = tuple(m.group(1) if m.group(1) is not None else m.group(2) for m in quoted if m)
        return Step("member" if len(names) == 1 else "members", names)
    try:
        indexes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"[{inside}] is neither indexes, a slice nor quoted names") from None
    return Step("indexes", indexes)


def select(steps: tuple[Step, ...], record: Any) -> Any:
    """Apply the steps to one record; :class:`FilterMismatch` when something is not there."""
    value = record
    for step in steps:
        value = _apply(step, value)
    return value


def _apply(step: Step, value: Any) -> Any:
    if step.kind in ("member", "members"):
        if not isinstance(value, dict):
            raise FilterMismatch(f"the record is a {_kind(value)}, not an object")
        missing = [k for k in step.keys if k not in value]
        if missing:
            raise FilterMismatch(f"the record has no {missing[0]!r}")
        if step.kind == "member":
            return value[step.keys[0]]
        return {k: value[k] for k in step.keys}
    if not isinstance(value, list):
        raise FilterMismatch(f"the record is a {_kind(value)}, not an array")
    if step.kind == "slice":
        start, stop = step.keys
        picked = value[start:stop]
        if not picked:
            raise FilterMismatch(f"[{_text(start)}:{_text(stop)}] of {len(value)} values is empty")
        return picked
    out = []
    for index in step.keys:
        if not -len(value) <= index < len(value):
            raise FilterMismatch(f"index {index} is out of range for {len(value)} values")
        out.append(value[index])
    return out[0] if len(out) == 1 and len(step.keys) == 1 else out


def _kind(value: Any) -> str:
    names = {"dict": "object", "list": "array", "str": "string"}
    return names.get(type(value).__name__, type(value).__name__)


def _text(bound: int | None) -> str:
    return "" if bound is None else str(bound)


# -- records in and out -------------------------------------------------------------------


def read_records(lines: list[bytes], content_type: str) -> list[Any]:
    """Lines of one mini-batch as records: CSV rows as lists of cells, JSON as values."""
    text = [line.decode("utf-8") for line in lines]
    if content_type == "text/csv":
        return list(csv.reader(text))
    return [json.loads(t) for t in text]


def write_records(records: list[Any], content_type: str) -> bytes:
    """Records back as lines of ``content_type`` (each ending with a newline)."""
    if content_type == "text/csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for record in records:
            writer.writerow(record if isinstance(record, list) else [record])
        return out.getvalue().encode("utf-8")
    return b"".join(json.dumps(r, separators=(",", ":")).encode("utf-8") + b"\n" for r in records)


def split_output(body: bytes, accept: str, count: int) -> list[Any]:
    """The model's answer to ``count`` records, one value per record, to join or filter.

    CSV and JSON Lines answer with a line per record; a JSON answer is a list of ``count``
    values, or an object whose one list of ``count`` values is the answer
    (``{"predictions": [...]}``, the default handlers' shape).
    """
    if accept == "text/csv":
        rows: list[Any] = [r for r in csv.reader(body.decode("utf-8").splitlines()) if r]
    elif accept == "application/jsonlines":
        rows = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
    elif accept == "application/json":
        answer = json.loads(body)
        if isinstance(answer, dict):
            lists = [v for v in answer.values() if isinstance(v, list) and len(v) == count]
            if len(lists) == 1:
                answer = lists[0]
        rows = answer if isinstance(answer, list) else [answer]
    else:
        raise ValueError(f"an answer of type {accept} cannot be split into records")
    if len(rows) != count:
        raise ValueError(f"the model answered {len(rows)} records for {count}")
    return rows


def join(record: Any, output: Any, content_type: str) -> Any:
    """``JoinSource: Input``: the input record with the model's output for it."""
    if content_type == "text/csv":
        return [*record, *(output if isinstance(output, list) else [output])]
    if isinstance(record, dict):
        return {**record, "SageMakerOutput": output}
    return {"SageMakerInput": record, "SageMakerOutput": output}
