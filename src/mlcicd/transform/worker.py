"""One worker of a local transform job: load the model once, then transform the tasks it is sent.

    python -m mlcicd.transform.worker CODE_DIR ENTRY_POINT

Runs in the model's build environment, like an endpoint worker, through the same
:mod:`mlcicd.serving.handlers` (the user's ``model_fn``/``input_fn``/``predict_fn``/
``output_fn``, or the defaults with their compiled fast path): the same code, the same answers.

The protocol is JSON lines. The worker loads the model's code (``inference.py`` and what it
imports) as it starts, while the job gets ready; the job's first line on stdin is then
``{"model_dir", "settings"}`` (the model is loaded from it), and each line after it a task
(``{"id", "path", "start", "end", "part", "whole", "gzip"}``: a byte range of an input file,
or the whole file). Stdin closed before the first line (the job failed getting ready) ends
the worker quietly. The worker answers on its protocol pipe (stdout as it started; the user's
prints go to stderr, the job's log) with ``{"event": "ready"}`` once the model is loaded, then
per mini-batch ``{"event": "progress", "id", "rows_in", "rows_out", "bytes"}`` and per task
``{"event": "done", "id"}`` or ``{"event": "error", "id", "kind", "line", "error"}`` (``line``
counted from the start of the task's range). The worker ends when stdin closes.

A range belongs to the lines that start inside it: a task that does not start at 0 skips the
line it starts in (the task before finishes it), so ranges can be cut anywhere.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from mlcicd.errors import MlcicdError
from mlcicd.serving.codecs import BadRequestError, InvocationError
from mlcicd.serving.handlers import (
    LoadedVariant,
    describe_exception,
    gc_paused_while_loading,
    load_handlers,
)
from mlcicd.transform import dataproc

CSV, JSONLINES = "text/csv", "application/jsonlines"
BLOCK = 1 << 20  # how much of a line too long to matter is read at a time, skipping it
# A call of fewer lines may take the compiled path (above mlcicd.compiler.LEAN_ROWS' largest).
LEAN_CALL_LINES = 1024


class TaskError(Exception):
    """A task failed: ``kind`` says whose fault (input_fn, model, input_filter…), ``line``
    where, counted from the start of the task's range (0-based)."""

    def __init__(self, kind: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line


class Transformer:
    """The model and the job's settings: a mini-batch of input lines → its bytes of output."""

    def __init__(self, variant: LoadedVariant, settings: dict[str, Any]) -> None:
        self.variant = variant
        self.content_type: str = settings["content_type"]
        self.accept: str = settings.get("accept") or self.content_type
        self.payload = int(float(settings["max_payload_mb"]) * 1024 * 1024)
        self.single = settings["batch_strategy"] == "SingleRecord"
        self.assemble_lines = settings["assemble_with"] == "Line"
        self.join = settings["join_source"] == "Input"
        self.input_steps = dataproc.parse_path(settings["input_filter"])
        self.output_steps = dataproc.parse_path(settings["output_filter"])
        self.per_record = self.join or (self.input_steps, self.output_steps) != ((), ())
        # Joined CSV rows stay CSV; anything else filtered is written as JSON Lines.
        joined_type = self.content_type if self.join else self.accept
        self.records_type = CSV if joined_type == CSV else JSONLINES

    def whole(self, body: bytes) -> tuple[bytes, int]:
        """SplitType None: the whole object is one request."""
        if len(body) > self.payload:
            raise TaskError(
                "payload",
                f"the object is {len(body)} bytes, more than MaxPayloadInMB ({self.payload} "
                "bytes) allows in one request",
            )
        return self._assembled(self.invoke(body, 0)), 1

    def batch(self, body: bytes) -> tuple[bytes, int, int]:
        """A mini-batch, lines as they came (blank ones included) → its output, assembled,
        and how many records went in and came out. The lines are split only where records
        are read one by one (filters, joins) or a refused one is looked for."""
        if self.per_record:
            return self._processed(split_lines(body))
        out = self.invoke(body)
        rows_in = _count_lines(body) - _blank_lines(body)
        return self._assembled(out), rows_in, _count_lines(out) if self.assemble_lines else rows_in

    def invoke(self, body: bytes, lines: list[bytes] | int | None = None) -> bytes:
        """The model on one request; a refused record is found in ``lines`` (the lines of
        ``body`` when None), or is line ``lines``."""
        try:
            answer = self._call(body)
        except BadRequestError as exc:
            if isinstance(lines, int):
                where: int | None = lines
            else:
                where = self._first_rejected(split_lines(body) if lines is None else lines)
            raise TaskError("input_fn", exc.message, where) from exc
        except InvocationError as exc:
            raise TaskError("model", exc.message, lines if isinstance(lines, int) else 0) from exc
        return answer

    def _call(self, body: bytes) -> bytes:
        """What the endpoint does with ``body`` (:meth:`LoadedVariant.invoke`). A large
        mini-batch goes to the estimator's own methods inside the compiled predictor
        (:data:`mlcicd.compiler.LEAN_ROWS`): the size decides there, for every caller. So the
        model is compiled only before the first call of at most :data:`LEAN_CALL_LINES` lines
        (SingleRecord's first record, a small object, a range's last mini-batch): a job of
        large mini-batches never pays for compiling and verifying it at its workers' start."""
        variant = self.variant
        if variant.compile_pending and body.count(b"\n") < LEAN_CALL_LINES:
            variant.compile()
        answer, _type = variant.invoke(body, self.content_type, self.accept)
        return answer

    def _processed(self, lines: list[bytes]) -> tuple[bytes, int, int]:
        index = [i for i, line in enumerate(lines) if line.strip()]
        try:
            records = dataproc.read_records([lines[i] for i in index], self.content_type)
        except ValueError as exc:
            raise TaskError("input", f"cannot read a {self.content_type} record: {exc}") from exc
        selected = [
            self._select(self.input_steps, r, index[k], "input_filter")
            for k, r in enumerate(records)
        ]
        sent = [dataproc.write_records([r], self.content_type) for r in selected]
        body = b"".join(sent)
        if len(sent) == 1:  # one record: without its newline, as an endpoint receives it
            body = body.rstrip(b"\n")
        try:
            answer = self.invoke(body, sent)
        except TaskError as exc:
            exc.line = None if exc.line is None else index[exc.line]
            raise
        try:
            outputs = dataproc.split_output(answer, self.accept, len(records))
        except ValueError as exc:
            raise TaskError("output", f"the model's answer: {exc}", index[0]) from exc
        if self.join:
            outputs = [
                dataproc.join(r, o, self.content_type)
                for r, o in zip(records, outputs, strict=True)
            ]
        final = [
            self._select(self.output_steps, o, index[k], "output_filter")
            for k, o in enumerate(outputs)
        ]
        return dataproc.write_records(final, self.records_type), len(records), len(final)

    @staticmethod
    def _select(steps: tuple[dataproc.Step, ...], record: Any, line: int, kind: str) -> Any:
        try:
            return dataproc.select(steps, record)
        except dataproc.FilterMismatch as exc:
            raise TaskError(kind, f"matches nothing: {exc}", line) from exc

    def _assembled(self, out: bytes) -> bytes:
        if self.assemble_lines and out and not out.endswith(b"\n"):
            return out + b"\n"
        return out

    def _first_rejected(self, lines: list[bytes]) -> int | None:
        """Which line input_fn refused: halve the mini-batch until one line is left.

        Only ``input_fn`` runs (no prediction), so this costs about one more decode of the
        batch. None when no single line is refused (the batch as a whole was).
        """
        lo, hi = 0, len(lines)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self._rejects(lines[lo:mid]) else (mid, hi)
        return lo if self._rejects(lines[lo:hi]) else None

    def _rejects(self, lines: list[bytes]) -> bool:
        body = b"".join(lines)
        if not body.strip():
            return False  # blank lines alone: not a record anyone sent
        try:
            self.variant.read_input(body, self.content_type)
        except BadRequestError:
            return True
        except InvocationError:
            return False
        return False


def _count_lines(out: bytes) -> int:
    return out.count(b"\n") + (1 if out and not out.endswith(b"\n") else 0)


# A blank line: at most one whitespace character before its newline (or, the last line
# without one, at most two): the codecs skip them, they are not records.
_BLANK_INSIDE = re.compile(rb"\n[ \t\r\x0b\x0c]?(?=\n)")  # finds the newline before it
_BLANK_FIRST = re.compile(rb"\A(?:[ \t\r\x0b\x0c]?\n|[ \t\r\x0b\x0c]{1,2}\Z)")
_BLANK_LAST = re.compile(rb"\n[ \t\r\x0b\x0c]{1,2}\Z")


def _blank_lines(body: bytes) -> int:
    """How many of the lines of ``body`` are blank, counted in C (no line is split)."""
    blank = len(_BLANK_INSIDE.findall(body))
    blank += 1 if _BLANK_FIRST.match(body) else 0
    return blank + (1 if _BLANK_LAST.search(body) else 0)


def split_lines(body: bytes) -> list[bytes]:
    """The lines of ``body``, each with its newline (only ``\\n`` ends a line, as in a
    file's ``readline``)."""
    lines = [line + b"\n" for line in body.split(b"\n")]
    last = lines.pop()  # after the last newline: b"\n" alone, or a line without its newline
    if last != b"\n":
        lines.append(last[:-1])
    return lines


def _skip_partial_line(fh: IO[bytes], start: int) -> None:
    """Seek to the first line that starts at or after ``start`` (a line as long as it may
    be is skipped a block at a time, never read whole)."""
    fh.seek(start - 1)
    while True:
        piece = fh.readline(BLOCK)
        if not piece or piece.endswith(b"\n"):
            return


def mini_batches(
    fh: IO[bytes], start: int, end: int | None, payload: int, single: bool
) -> Iterator[tuple[int, int, bytes]]:
    """The lines starting in ``[start, end)`` of ``fh`` (to its end when ``end`` is None) in
    mini-batches of at most ``payload`` bytes, one record each when ``single``: (index of the
    batch's first line in the range, the bytes of the range it took, its lines as one body).

    The file is read in blocks of ``payload`` bytes cut at their last newline: nothing is
    parsed or split here — a mini-batch is as the file has it. Blank lines ride along in a
    multi-record batch (the codecs skip them); a batch of blank lines only is skipped.
    """
    if start > 0:
        _skip_partial_line(fh, start)
    pos = fh.tell()
    buffer = b""
    number = 0
    at_end = False
    while buffer or not at_end:
        if end is not None and pos >= end:
            return
        while len(buffer) <= payload and not at_end:  # a batch, and a byte to know it ends
            block = fh.read(payload + 1 - len(buffer))
            at_end = not block
            buffer += block
        if not buffer:
            return
        if at_end and len(buffer) <= payload:
            cut = len(buffer)
        else:
            cut = buffer.rfind(b"\n", 0, payload) + 1
            if cut == 0:
                raise TaskError(
                    "payload",
                    f"a record is larger than MaxPayloadInMB ({payload} bytes)",
                    number,
                )
        if end is not None and pos + cut > end:
            # The lines that start before ``end`` are this range's; the rest the next one's.
            ending = buffer.find(b"\n", end - pos - 1)
            cut = ending + 1 if ending >= 0 else len(buffer)
        body, buffer = buffer[:cut], buffer[cut:]
        if single:
            for k, line in enumerate(split_lines(body)):
                if line.strip():
                    yield number + k, len(line), line
        elif body.strip():
            yield number, cut, body
        number += _count_lines(body)
        pos += cut


# -- the protocol -------------------------------------------------------------------------


def run_task(
    transformer: Transformer, task: dict[str, Any], report: Callable[[dict[str, Any]], None]
) -> None:
    """Transform one task's range into its part file (written whole, then renamed)."""
    part = Path(task["part"])
    partial = part.with_name(part.name + ".partial")
    compressed = bool(task.get("gzip"))
    with _open_input(task["path"], compressed) as fh, open(partial, "wb") as out:
        if task.get("whole"):
            body = fh.read(transformer.payload + 1)
            data, rows_out = transformer.whole(body)
            out.write(data)
            report(_progress(task, 1, rows_out, 0))
        else:
            batches = mini_batches(
                fh, task["start"], task.get("end"), transformer.payload, transformer.single
            )
            for first, size, body in batches:
                try:
                    data, rows_in, rows_out = transformer.batch(body)
                except TaskError as exc:
                    exc.line = None if exc.line is None else first + exc.line
                    raise
                out.write(data)
                report(_progress(task, rows_in, rows_out, 0 if compressed else size))
    os.replace(partial, part)


def _open_input(path: str, compressed: bool) -> BinaryIO:
    """The input, decompressed as it is read when ``compressed`` (never whole in memory)."""
    if compressed:
        return cast(BinaryIO, gzip.open(path, "rb"))
    return open(path, "rb")


def _progress(task: dict[str, Any], rows_in: int, rows_out: int, size: int) -> dict[str, Any]:
    return {
        "event": "progress",
        "id": task["id"],
        "rows_in": rows_in,
        "rows_out": rows_out,
        "bytes": size,
    }


def main(argv: list[str]) -> int:
    # The protocol gets the real stdout; what the user's code prints goes to the log.
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def report(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")

    try:
        with gc_paused_while_loading():
            handlers = load_handlers(Path(argv[0]), argv[1] if len(argv) > 1 else "inference.py")
            job = sys.stdin.readline()
            if not job:
                return 0  # the job ended before it was ready: nothing to load
            spec = json.loads(job)
            model = handlers.load_model(spec["model_dir"])
            variant = LoadedVariant("AllTraffic", handlers, model, compile_now=False)
        transformer = Transformer(variant, spec["settings"])
    except Exception as exc:
        error = exc.headline if isinstance(exc, MlcicdError) else describe_exception(exc)
        report({"event": "failed", "error": error})
        return 3
    report({"event": "ready", "pid": os.getpid()})
    for raw in sys.stdin:
        task = json.loads(raw)
        try:
            run_task(transformer, task, report)
        except TaskError as exc:
            report(_error(task, exc.kind, exc.line, str(exc)))
        except Exception as exc:  # reading the input, writing the part: the job's fault
            report(_error(task, "io", None, describe_exception(exc)))
        else:
            report({"event": "done", "id": task["id"]})
    protocol.flush()
    return 0


def _error(task: dict[str, Any], kind: str, line: int | None, error: str) -> dict[str, Any]:
    return {"event": "error", "id": task["id"], "kind": kind, "line": line, "error": error}


def exit_now(code: int) -> None:
    """End the worker without tearing its interpreter down, as multiprocessing's workers do.

    Every part is written and closed and every answer sent by then; what is left is freeing
    the model and unloading scikit-learn, scipy and pandas — a second and more on a busy
    machine, which the job would wait for — and waiting on any thread the user's code left
    running, which could be forever."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
