"""The worker's reading of a range: mini-batches cut from blocks of the file, checked against
the plain definition (the lines that start in the range, packed up to the payload) on files
with blank lines, CRLF, a missing last newline, and ranges cut anywhere."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlcicd import compiler
from mlcicd.serving.handlers import LoadedVariant, load_handlers
from mlcicd.transform import TransformSettings
from mlcicd.transform.worker import (
    BLOCK,
    LEAN_CALL_LINES,
    TaskError,
    Transformer,
    _blank_lines,
    mini_batches,
    split_lines,
)
from tests.helpers import IrisModel

SAMPLES = [
    b"",
    b"\n",
    b"1,2\n",
    b"1,2",
    b"1,2\n\n3,4\n",
    b"\n\n\n1\n",
    b"a\r\n\r\nb\r\n",
    b" \n\t\n  \nx\n \n",
    b"x\n  ",
    b"x\n ",
    b" ",
    b"5.1,3.5,1.4,0.2\n4.9,3.0,1.4,0.2\n4.7,3.2,1.3,0.2",
]


def lines_of(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, line) of each line of ``data``, as ``readline`` reads them."""
    found, offset = [], 0
    for line in io.BytesIO(data):
        found.append((offset, line))
        offset += len(line)
    return found


def expected(
    data: bytes, start: int, end: int | None, payload: int, single: bool
) -> list[tuple[int, bytes]]:
    """The lines starting in [start, end), packed greedily up to ``payload`` bytes."""
    mine = [
        line for offset, line in lines_of(data) if offset >= start and (end is None or offset < end)
    ]
    batches: list[tuple[int, list[bytes]]] = []
    for number, line in enumerate(mine):
        if single:
            if line.strip():
                batches.append((number, [line]))
        elif batches and sum(map(len, batches[-1][1])) + len(line) <= payload:
            batches[-1][1].append(line)
        else:
            batches.append((number, [line]))
    return [(n, b"".join(ls)) for n, ls in batches if b"".join(ls).strip()]


def read(
    data: bytes, start: int, end: int | None, payload: int, single: bool
) -> list[tuple[int, bytes]]:
    return [
        (n, body) for n, _size, body in mini_batches(io.BytesIO(data), start, end, payload, single)
    ]


@pytest.mark.parametrize("data", SAMPLES)
def test_blank_lines_and_split_lines_agree_with_readline(data: bytes) -> None:
    lines = [line for _offset, line in lines_of(data)]
    assert split_lines(data) == lines
    assert _blank_lines(data) == sum(1 for line in lines if len(line) <= 2 and not line.strip())


def test_ranges_cut_anywhere_read_every_line_once_in_batches_within_the_payload() -> None:
    rng = random.Random(11)
    pieces = [b"5.1,3.5,1.4,0.2\n", b"\n", b"\r\n", b"6.0,2.2\r\n", b" \n", b"4.4,2.9,1.4,0.2\n"]
    for case in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        if case % 3 == 0:
            data = data.rstrip(b"\n")  # no newline at the end
        payload = rng.randrange(17, 80)
        single = case % 5 == 0
        cuts = sorted({0, *(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 5)))})
        ranges = [(a, b) for a, b in zip(cuts, [*cuts[1:], None], strict=True)]
        whole = b""
        for start, end in ranges:
            batches = read(data, start, end, payload, single)
            assert batches == expected(data, start, end, payload, single), (data, start, end)
            assert all(len(body) <= payload for _n, body in batches)
            whole += b"".join(body for _n, body in batches)
        assert whole.split() == data.split()  # every record once, in order


def test_a_record_larger_than_the_payload_is_named_by_its_line_in_the_range() -> None:
    data = b"1,2\n3,4\n" + b"9" * 40 + b"\n5,6\n"
    with pytest.raises(TaskError, match=r"larger than MaxPayloadInMB \(20 bytes\)") as caught:
        read(data, 0, None, 20, False)
    assert (caught.value.kind, caught.value.line) == ("payload", 2)
    # a last line exactly as long as the payload, without a newline, fits
    assert read(b"1,2\n" + b"7" * 20, 4, None, 20, False) == [(0, b"7" * 20)]


class Watched(io.BytesIO):
    """A file that remembers the most it handed out at once."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        return self._seen(super().read(size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._seen(super().readline(size))

    def _seen(self, data: bytes) -> bytes:
        self.largest = max(self.largest, len(data))
        return data


def test_a_line_without_end_is_never_read_whole() -> None:
    endless = b"9" * (3 * BLOCK)  # a file that is one huge line: no newline anywhere
    watched = Watched(endless)
    with pytest.raises(TaskError, match="larger than MaxPayloadInMB"):
        list(mini_batches(watched, 0, None, 1000, False))
    assert watched.largest <= 1001  # the payload and one byte, not 3 MB

    watched = Watched(endless + b"\n1,2\n")  # a range starting inside it skips it a block at a time
    assert [body for _n, _s, body in mini_batches(watched, 10, None, 1000, False)] == [b"1,2\n"]
    assert watched.largest <= BLOCK


# What a worker may not bring with it: each of these costs every worker's start (or pulls in
# what does), and none is used by one. The model's own libraries come with its model_fn.
HEAVY = (
    "mlcicd.state",
    "mlcicd.config",
    "mlcicd.project",
    "sqlite3",
    "pydantic",
    "yaml",
    "boto3",
    "botocore",
    "pandas",
    "scipy",
    "sklearn",
    "joblib",
)


@pytest.mark.integration  # a fresh interpreter
def test_the_worker_module_imports_only_what_a_worker_uses() -> None:
    code = "import json, sys\nimport mlcicd.transform.worker\nprint(json.dumps(list(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    loaded = set(json.loads(out))
    assert "mlcicd.serving.handlers" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.integration  # a worker process
def test_a_worker_whose_job_ends_before_it_is_ready_ends_quietly(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("print('loaded')\n")  # the user's prints: to the log
    worker = subprocess.run(
        [sys.executable, "-m", "mlcicd.transform.worker", str(code), "inference.py"],
        input=b"",  # stdin closed before the model's directory came
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert (worker.returncode, worker.stdout) == (0, b"")
    assert "loaded" in worker.stderr.decode().splitlines()


def test_the_model_is_compiled_before_the_first_call_small_enough_to_use_it(
    tmp_path: Path, iris: IrisModel
) -> None:
    (tmp_path / "inference.py").write_text("")  # SageMaker's default handlers
    handlers = load_handlers(tmp_path)
    model = handlers.load_model(iris.model_dir)  # its own copy: the compiler's registry is global
    variant = LoadedVariant("AllTraffic", handlers, model, compile_now=False)
    transformer = Transformer(variant, TransformSettings().to_dict())
    rows = np.tile(iris.X, (LEAN_CALL_LINES // len(iris.X) + 1, 1))[:LEAN_CALL_LINES]
    large = "".join(",".join(f"{v:.1f}" for v in row) + "\n" for row in rows).encode()
    expected = "".join(f"{v}\n" for v in iris.model.predict(np.round(rows, 1))).encode()

    # A job of large mini-batches never compiles: scikit-learn answers them anyway.
    assert transformer.batch(large) == (expected, LEAN_CALL_LINES, LEAN_CALL_LINES)
    assert (variant.compile_pending, variant.compiled) == (True, ())

    # The first small call compiles it (once), and is answered through it, the same.
    assert transformer.batch(large[: large.index(b"\n") + 1])[0] == expected[:2]
    assert (variant.compile_pending, variant.compiled) == (False, ("predict",))
    assert compiler.lookup(model) is not None
