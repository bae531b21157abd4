"""Transform jobs on this machine: worker processes running the model's own inference code.

    <root>/models/<sha256>/     each model.tar.gz, digest-checked and extracted once
    <root>/<job>/job.log        the workers' stderr: the user's prints, tracebacks
    <root>/<job>/parts/         each task's output, renamed into place when complete

The input (a file or a directory of them) is cut into tasks: a byte range of a file split
on lines (the worker finishes the line a range ends in and skips the one it starts in), or a
whole object (``SplitType: None``, or gzip, which cannot be entered in the middle); the
tasks shrink toward the job's end, so that the workers finish together. Up to
``max_concurrent`` workers (:mod:`mlcicd.transform.worker`) each load the model once (their
thread pools sized to their share of the cores) and take the next task when they finish one,
so two workers share one big file. They start first, no more than there are tasks (an
``s3://`` input's are planned from its listing, before the download): their interpreters and
the model's code load while this process downloads, lists, claims, extracts and plans, and
each is handed the model's directory when it is there (a worker's start is most of a short
job). This process
reads no record: it hands out byte ranges and joins parts. When every task of an object is
done its parts are joined into ``<output>/<name>.out`` under a temporary name and renamed:
an output either is complete or is not there.

The output directory is the job's: it may hold only what a job with the same model, input
and settings writes (a ``.mlcicd-transform.json`` says which), so a rerun after a failure
or a ``kill -9`` cleans up what its predecessor left half-done and writes the same outputs.
The user's code runs only in the workers: whatever it does, this process records the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from mlcicd.archive import ensure_extracted
from mlcicd.errors import TransformError
from mlcicd.fsutil import atomic_write_json, open_private_log
from mlcicd.process import child_environment, share_cores
from mlcicd.transform import s3io
from mlcicd.transform.base import (
    COMPLETED,
    MANIFEST,
    OUTPUT_SUFFIX,
    TransformJobResult,
    TransformJobSpec,
    TransformProgress,
    Where,
    check_settings,
    flag,
)

TEMP_SUFFIX = ".mlcicd-tmp"
# A task is this much of a file: small enough that two workers share a file evenly and
# progress moves, large enough that a task is many mini-batches' worth of work.
TASK_BYTES = 4 * 1024 * 1024
MIN_TASK_BYTES = 64 * 1024
LOAD_TIMEOUT = 600.0  # model_fn's time to load, per worker


@dataclass(frozen=True)
class InputObject:
    name: str  # relative to the input, with / separators: the output is <name>.out
    path: Path
    size: int


@dataclass
class Task:
    id: int
    obj: InputObject
    start: int
    end: int | None
    whole: bool
    part: Path
    done: bool = False
    reported: int = 0  # bytes of it the progress counted

    def message(self, gzip: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.obj.path),
            "start": self.start,
            "end": self.end,
            "whole": self.whole,
            "gzip": gzip,
            "part": str(self.part),
        }


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    task: Task | None = None
    buffer: bytes = b""
    ready: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)


class LocalTransformBackend:
    """Jobs under ``root``; ``where`` names a setting as the user gave it (flag or key)."""

    TYPE: ClassVar[str] = "local"

    def __init__(
        self, root: Path, *, where: Where = flag, s3: s3io.ClientFactory | None = None
    ) -> None:
        self.root = Path(root).resolve()
        self.where = where
        self.s3 = s3 or _s3_client

    def log_path(self, name: str) -> Path:
        return self.root / name / "job.log"

    def input_digest(self, source: str) -> str:
        """What the input holds, as a digest: of its bytes here, of its listing on S3 (keys,
        sizes and ETags: S3's own digest of each object's bytes)."""
        if source.startswith(s3io.S3):
            return s3io.listing_digest(self.s3(), source, self.where("input"))
        return digest_inputs(Path(source), self.where("input"))

    def run(
        self,
        spec: TransformJobSpec,
        on_progress: Callable[[TransformProgress], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> TransformJobResult:
        settings = spec.settings
        check_settings(settings, self.where)
        job_dir = self.root / spec.name
        staged = job_dir / "staged"  # s3:// input and output, on their way
        shutil.rmtree(staged, ignore_errors=True)
        try:
            return self._run(spec, job_dir, staged, on_progress, on_log)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _run(
        self,
        spec: TransformJobSpec,
        job_dir: Path,
        staged: Path,
        on_progress: Callable[[TransformProgress], None] | None,
        on_log: Callable[[str], None] | None,
    ) -> TransformJobResult:
        """The workers start first, each loading the model's code while this process gets
        the job ready (the input downloaded and listed, the output claimed, the model
        archive checked and extracted, the tasks planned); each is then handed the model's
        directory and the job's settings, and loads the model."""
        settings = spec.settings
        remote_in, remote_out = (u.startswith(s3io.S3) for u in (spec.input, spec.output))
        parts = job_dir / "parts"
        workers = settings.max_concurrent
        listed: list[tuple[str, str, int]] = []
        if remote_in:  # the listing says what the download will hold: no surplus worker
            listed = s3io.list_input(self.s3(), spec.input, self.where("input"))
            objects = [
                InputObject(rel, staged / "in" / rel, size)
                for _, rel, size in listed
                if _transformed(rel)
            ]
            _check_records(objects, self.where("input"), spec.input)  # before any download
        else:  # what needs no worker is refused before one starts
            objects = list_inputs(Path(spec.input), self.where("input"))
            if not remote_out:
                _check_apart(Path(spec.input).resolve(), Path(spec.output).resolve(), self.where)
        tasks = plan_tasks(objects, parts, settings.split_type, settings.compression, workers)
        run = _Run(self, spec, on_progress)
        try:
            run.start_workers(min(workers, len(tasks)))
            if remote_in:
                source = s3io.download_input(self.s3(), spec.input, staged / "in", listed)
                objects = list_inputs(source, self.where("input"))  # as downloaded
                tasks = plan_tasks(
                    objects, parts, settings.split_type, settings.compression, workers
                )
            output, upload = self._claim(spec, objects, staged)
            model_dir = ensure_extracted(
                spec.model.model_file,
                self.root / "models" / spec.model.model_sha256,
                expected_sha256=spec.model.model_sha256,
            )
            shutil.rmtree(parts, ignore_errors=True)
            parts.mkdir(parents=True)
            progress = TransformProgress(
                objects_total=len(objects),
                bytes_total=sum(o.size for o in objects),
                started=time.monotonic(),
            )
            run.begin(
                {"model_dir": str(model_dir), "settings": settings.to_dict()},
                tasks,
                progress,
                output,
                upload,
            )

            def loaded() -> None:
                if on_log is not None:
                    on_log(
                        f"{len(run.workers)} worker(s) loaded {spec.model.ref}; {len(tasks)} tasks"
                    )

            run.dispatch(loaded)
        finally:
            run.stop()
            shutil.rmtree(parts, ignore_errors=True)
        base = spec.output.rstrip("/") if remote_out else str(output)
        outputs = [f"{base}/{o.name}{OUTPUT_SUFFIX}" for o in objects]
        return TransformJobResult(
            COMPLETED, None, len(objects), progress.rows_in, progress.rows_out, outputs
        )

    def _claim(
        self, spec: TransformJobSpec, objects: list[InputObject], staged: Path
    ) -> tuple[Path, Callable[[Path, str], None] | None]:
        """The output made this job's: where the outputs are assembled, and how each is
        uploaded when it is complete (None: it is in its place already)."""
        if not spec.output.startswith(s3io.S3):
            output = Path(spec.output).resolve()
            claim_output(output, objects, _job_key(spec), self.where("output"))
            return output, None
        output = staged / "out"
        expected = {o.name + OUTPUT_SUFFIX for o in objects}
        client = self.s3()
        s3io.claim_output(client, spec.output, expected, _job_key(spec), self.where("output"))
        output.mkdir(parents=True)

        def upload(path: Path, rel: str) -> None:
            s3io.upload(client, path, spec.output, rel)
            path.unlink()

        return output, upload


class _Run:
    """One job's workers and tasks, from the first start to the last rename."""

    def __init__(
        self,
        backend: LocalTransformBackend,
        spec: TransformJobSpec,
        on_progress: Callable[[TransformProgress], None] | None,
    ) -> None:
        self.backend = backend
        self.spec = spec
        self.on_progress = on_progress
        self.upload: Callable[[Path, str], None] | None = None
        self.tasks: list[Task] = []
        self.pending: list[Task] = []
        self.progress = TransformProgress()
        self.output = Path()
        self.workers: list[_Worker] = []
        self.selector = selectors.DefaultSelector()
        self.gzip = spec.settings.compression == "Gzip"
        self.log_path = backend.log_path(spec.name)

    def start_workers(self, count: int) -> None:
        """Start ``count`` workers; each loads the model's code while the others do, and
        while this process gets the job ready (:meth:`begin` hands them the rest)."""
        python = str(self.spec.model.python or sys.executable)
        env = share_cores({**child_environment(), **self.spec.model.environment}, count)
        code = [str(self.spec.model.code_dir), self.spec.model.entry_point]
        with open_private_log(self.log_path, "ab") as log:
            for _ in range(count):
                try:
                    proc = subprocess.Popen(
                        [python, "-m", "mlcicd.transform.worker", *code],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        cwd=self.log_path.parent,
                        env=env,
                    )
                except OSError as exc:
                    raise TransformError(
                        f"cannot start a transform worker with {python}: {exc}"
                    ) from exc
                worker = _Worker(proc)
                self.workers.append(worker)
                assert proc.stdout is not None
                os.set_blocking(proc.stdout.fileno(), False)
                self.selector.register(proc.stdout, selectors.EVENT_READ, worker)

    def begin(
        self,
        load: dict[str, Any],
        tasks: list[Task],
        progress: TransformProgress,
        output: Path,
        upload: Callable[[Path, str], None] | None,
    ) -> None:
        """The job is ready: ``load`` (the model's directory, the settings) to every worker,
        which loads the model; ``tasks`` to hand out as they are ready."""
        self.tasks, self.pending = tasks, list(reversed(tasks))
        self.progress, self.output, self.upload = progress, output, upload
        line = (json.dumps(load) + "\n").encode()
        for worker in self.workers:
            stdin = worker.proc.stdin
            assert stdin is not None
            # A worker that could not load the code has said why (or died): dispatch reads it.
            with contextlib.suppress(OSError):
                stdin.write(line)
                stdin.flush()

    def dispatch(self, on_loaded: Callable[[], None]) -> None:
        """Every task to a worker, each worker's first as soon as it has loaded the model
        (not when the last one has: on a busy machine they load at different speeds)."""
        model = self.spec.model
        deadline = time.monotonic() + LOAD_TIMEOUT
        while not all(t.done for t in self.tasks):
            if not any(w.ready for w in self.workers) and time.monotonic() > deadline:
                raise TransformError(
                    f"the model {model.ref} did not load in {LOAD_TIMEOUT:.0f}s",
                    hint=f"see {self.log_path}",
                )
            for worker, message in self._messages(1.0):
                event = message.get("event")
                if event == "ready" and not worker.ready:
                    worker.ready = True
                    self._assign(worker)
                    if all(w.ready for w in self.workers):
                        on_loaded()
                elif event == "failed":
                    raise TransformError(
                        f"the model {model.ref} could not be loaded: {message.get('error')}",
                        hint=f"see {self.log_path}",
                    )
                else:
                    self._handle(worker, message)

    def _assign(self, worker: _Worker) -> None:
        worker.task = self.pending.pop() if self.pending else None
        stdin = worker.proc.stdin
        assert stdin is not None
        if worker.task is None:
            with contextlib.suppress(OSError):
                stdin.close()  # nothing left: the worker ends
            return
        try:
            stdin.write((json.dumps(worker.task.message(self.gzip)) + "\n").encode())
            stdin.flush()
        except OSError:
            raise self._died(worker) from None

    def _handle(self, worker: _Worker, message: dict[str, Any]) -> None:
        event, task = message.get("event"), worker.task
        if task is None or message.get("id") != task.id:
            return
        progress = self.progress
        if event == "progress":
            progress.rows_in += int(message["rows_in"])
            progress.rows_out += int(message["rows_out"])
            task.reported += int(message["bytes"])
            progress.bytes_done += int(message["bytes"])
        elif event == "done":
            task.done = True
            size = (task.end if task.end is not None else task.obj.size) - task.start
            progress.bytes_done += max(0, size - task.reported)
            self._assign(worker)  # it works (or ends) while the object is assembled
            if all(t.done for t in self.tasks if t.obj is task.obj):
                self._assemble(task.obj)
                progress.objects_done += 1
        elif event == "error":
            raise self._failure(task, message)
        if self.on_progress is not None:
            self.on_progress(progress)

    def _assemble(self, obj: InputObject) -> None:
        """The object's parts, in order, into ``<name>.out``: whole, or not at all."""
        final = self.output / (obj.name + OUTPUT_SUFFIX)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.with_name(final.name + TEMP_SUFFIX)
        with open(temp, "wb") as out:
            for task in self.tasks:
                if task.obj is obj:
                    with open(task.part, "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
                    task.part.unlink()
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
        if self.upload is not None:
            self.upload(final, obj.name + OUTPUT_SUFFIX)

    def _failure(self, task: Task, message: dict[str, Any]) -> TransformError:
        kind, error = message.get("kind"), message.get("error")
        where = task.obj.name
        line = message.get("line")
        if isinstance(line, int):
            where += f", line {_line_number(task, line)}"
        what = {
            "input_fn": "the model's input_fn rejected a record",
            "model": "the model failed",
            "input_filter": f"{self.backend.where('input_filter')} "
            f"{self.spec.settings.input_filter!r}",
            "output_filter": f"{self.backend.where('output_filter')} "
            f"{self.spec.settings.output_filter!r}",
            "payload": f"a request is too large for {self.backend.where('max_payload_mb')}",
            "input": f"a record is not {self.spec.settings.content_type} "
            f"({self.backend.where('content_type')})",
        }.get(str(kind), "the transform failed")
        return TransformError(f"{what} in {where}: {error}", hint=f"see {self.log_path}")

    def _died(self, worker: _Worker) -> TransformError:
        code = worker.proc.wait()
        doing = f" while transforming {worker.task.obj.name}" if worker.task else ""
        return TransformError(
            f"a transform worker (pid {worker.proc.pid}) exited with code {code}{doing}",
            hint=f"see {self.log_path}",
        )

    def _messages(self, timeout: float) -> Iterator[tuple[_Worker, dict[str, Any]]]:
        for key, _ in self.selector.select(timeout):
            worker: _Worker = key.data
            stream: IO[bytes] = key.fileobj  # type: ignore[assignment]
            chunk = stream.read(1 << 16) or b""
            if not chunk:
                self.selector.unregister(stream)
                if worker.task is not None or not worker.ready:
                    raise self._died(worker)
                continue
            worker.buffer += chunk
            *lines, worker.buffer = worker.buffer.split(b"\n")
            for line in lines:
                try:
                    yield worker, json.loads(line)
                except ValueError:
                    continue

    def stop(self) -> None:
        """Every worker ended: those still working (a failure) are killed."""
        for worker in self.workers:
            if worker.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    worker.proc.stdin.close()
            if worker.task is not None or not worker.ready:
                worker.proc.kill()
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            if worker.proc.stdout is not None:
                worker.proc.stdout.close()
        self.selector.close()
        for task in self.tasks:
            if not task.done:
                with contextlib.suppress(OSError):
                    task.part.unlink()


# -- input, output, tasks -----------------------------------------------------------------


def list_inputs(source: Path, name: str) -> list[InputObject]:
    """The objects of the input: the file, or every file under the directory (sorted)."""
    if source.is_file():
        return [InputObject(source.name, source.resolve(), source.stat().st_size)]
    if not source.is_dir():
        raise TransformError(f"{name} {source} does not exist", hint="give a file or a directory")
    objects = [
        InputObject(p.relative_to(source).as_posix(), p.resolve(), p.stat().st_size)
        for p in sorted(source.rglob("*"))
        if p.is_file() and _transformed(p.relative_to(source).as_posix())
    ]
    _check_records(objects, name, str(source))
    return objects


def _check_records(objects: list[InputObject], name: str, source: str) -> None:
    """Refuse an input with nothing to transform: no object, or only hidden or empty ones —
    a directory or an ``s3://`` listing alike."""
    if not objects or not any(o.size for o in objects):
        raise TransformError(
            f"{name} {source} is empty: no file with records in it",
            hint="point it at the files to transform",
        )


def _transformed(name: str) -> bool:
    """A file of the input that is transformed: none in or under a hidden name (``.git``)."""
    return not any(part.startswith(".") for part in name.split("/"))


def _check_apart(source: Path, output: Path, where: Where) -> None:
    if output == source or source in output.parents or output in source.parents:
        raise TransformError(
            f"{where('output')} {output} and {where('input')} {source} overlap",
            hint="write the outputs to a directory of their own, outside the input",
        )


def _job_key(spec: TransformJobSpec) -> dict[str, Any]:
    """What makes two jobs the same job: a rerun may take over its output directory."""
    remote = spec.input.startswith(s3io.S3)
    return {
        "input": spec.input if remote else str(Path(spec.input).resolve()),
        "model_sha256": spec.model.model_sha256,
        "settings": {k: v for k, v in spec.settings.to_dict().items() if k != "max_concurrent"},
    }


def claim_output(output: Path, objects: list[InputObject], key: dict[str, Any], name: str) -> None:
    """Make ``output`` this job's: refuse others' files, drop a predecessor's leftovers."""
    expected = {o.name + OUTPUT_SUFFIX for o in objects}
    if output.is_dir():
        recorded: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            recorded = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        others = []
        for path in sorted(output.rglob("*")):
            rel = path.relative_to(output).as_posix()
            if path.is_dir() or rel == MANIFEST or rel.endswith(TEMP_SUFFIX):
                continue
            if rel not in expected or recorded is None:
                others.append(rel)
        if recorded is not None and recorded != key:
            raise TransformError(
                f"{name} {output} holds the outputs of another transform job (model "
                f"{str(recorded.get('model_sha256'))[:12]}, input {recorded.get('input')})",
                hint="choose another output directory, or delete that one",
            )
        if others:
            more = f" and {len(others) - 1} more" if len(others) > 1 else ""
            raise TransformError(
                f"{name} {output} holds files that are not this job's: {others[0]}{more}",
                hint="choose an empty (or new) output directory",
            )
        for leftover in output.rglob(f"*{TEMP_SUFFIX}"):
            leftover.unlink()
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / MANIFEST, key)


def plan_tasks(
    objects: list[InputObject], parts: Path, split_type: str, compression: str, workers: int
) -> list[Task]:
    """The objects cut into tasks, in order: byte ranges of a file split on lines, shrinking
    as the job nears its end (a third of what is left per worker, within
    [MIN_TASK_BYTES, TASK_BYTES]), so that the workers finish together; a whole object when
    it cannot be entered in the middle (``SplitType: None``, gzip)."""
    tasks: list[Task] = []
    remaining = sum(o.size for o in objects)
    for obj in objects:
        whole = split_type == "None"
        ranges: list[tuple[int, int | None]] = []
        if not (whole or compression == "Gzip"):
            start = 0
            while start < obj.size:
                size = min(TASK_BYTES, max(MIN_TASK_BYTES, remaining // (3 * workers)))
                end = min(start + size, obj.size)
                ranges.append((start, end))
                remaining -= end - start
                start = end
        if len(ranges) <= 1:
            ranges = [(0, None)]
            remaining -= obj.size if whole or compression == "Gzip" else 0
        for first, last in ranges:
            part = parts / f"{len(tasks):06d}"
            tasks.append(Task(len(tasks), obj, first, last, whole, part))
    return tasks


def _line_number(task: Task, line: int) -> int:
    """The 1-based line number in the object of the task's ``line`` (0-based in its range)."""
    if task.start == 0 or task.whole:
        return line + 1
    counted = 0
    with open(task.obj.path, "rb") as fh:
        remaining = task.start - 1
        while remaining > 0:
            chunk = fh.read(min(remaining, 1 << 20))
            if not chunk:
                break
            counted += chunk.count(b"\n")
            remaining -= len(chunk)
    return counted + 1 + line + 1


def digest_inputs(source: Path, name: str = "input") -> str:
    """The input's digest (names and bytes): the pipeline's stage runs again when it changes."""
    digest = hashlib.sha256()
    for obj in list_inputs(source, name):
        digest.update(obj.name.encode() + b"\0")
        with open(obj.path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _s3_client() -> Any:
    from mlcicd.aws.clients import client

    return client("s3")
