"""Local transform jobs, end to end: real worker processes running the model's handlers on
real files, SageMaker's fields one by one, and what a failure (or a kill -9) leaves behind."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlcicd.errors import ArtifactError, TransformError
from mlcicd.transform import TransformJobSpec, TransformModel, TransformSettings
from mlcicd.transform import local as local_module
from mlcicd.transform.base import TransformJobResult
from mlcicd.transform.local import LocalTransformBackend
from tests.helpers import IrisModel, wait_for
from tests.transform.conftest import rows

pytestmark = pytest.mark.integration  # worker processes

EXAMPLE_CODE = Path(__file__).parents[2] / "examples" / "iris" / "src"


def write_csv(path: Path, data: np.ndarray, ids: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        (f"id-{i}," if ids else "") + ",".join(f"{v:.1f}" for v in row)
        for i, row in enumerate(data)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(
    tmp_path: Path,
    model: TransformModel,
    source: Path,
    output: str = "out",
    name: str = "job",
    **settings: object,
) -> TransformJobResult:
    spec = TransformJobSpec(
        name,
        model,
        str(source),
        str(tmp_path / output),
        TransformSettings(**settings),  # type: ignore[arg-type]
    )
    return LocalTransformBackend(tmp_path / "jobs").run(spec)


def predicted(iris: IrisModel, data: np.ndarray) -> list[str]:
    return [str(v) for v in iris.model.predict(data)]


def test_each_input_becomes_name_out_with_the_models_answers_in_order(
    tmp_path: Path, iris: IrisModel, model: TransformModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "TASK_BYTES", 1000)  # many ranges, shared by two workers
    data = rows(iris, 3000)
    write_csv(tmp_path / "in" / "a.csv", data)
    write_csv(tmp_path / "in" / "nested" / "b.csv", data[:10])

    result = run(tmp_path, model, tmp_path / "in", max_concurrent=2, max_payload_mb=0.001)

    assert (result.status, result.objects, result.rows_in, result.rows_out) == (
        "Completed",
        2,
        3010,
        3010,
    )
    out = tmp_path / "out"
    assert (out / "a.csv.out").read_text().splitlines() == predicted(iris, data)
    assert (out / "nested" / "b.csv.out").read_text().splitlines() == predicted(iris, data[:10])
    assert sorted(p.name for p in out.iterdir()) == [
        ".mlcicd-transform.json",
        "a.csv.out",
        "nested",
    ]
    assert not (tmp_path / "jobs" / "job" / "parts").exists()


def test_single_record_gzip_and_split_none_give_the_same_answers(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    data = rows(iris, 40)
    plain = write_csv(tmp_path / "plain" / "a.csv", data)
    packed = tmp_path / "packed" / "a.csv.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    single = run(tmp_path, model, plain, "single", "s", batch_strategy="SingleRecord")
    run(tmp_path, model, packed, "gz", "g", compression="Gzip")
    run(tmp_path, model, plain, "whole", "w", split_type="None", assemble_with="None")

    expected = predicted(iris, data)
    assert single.rows_in == 40
    assert (tmp_path / "single" / "a.csv.out").read_text().splitlines() == expected
    assert (tmp_path / "gz" / "a.csv.gz.out").read_text().splitlines() == expected
    assert (tmp_path / "whole" / "a.csv.out").read_text().splitlines() == expected


def test_input_filter_join_and_output_filter_keep_the_id_beside_the_prediction(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    data = rows(iris, 30)
    source = write_csv(tmp_path / "in" / "a.csv", data, ids=True)

    run(tmp_path, model, source, input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]")

    lines = (tmp_path / "out" / "a.csv.out").read_text().splitlines()
    assert lines == [f"id-{i},{p}" for i, p in enumerate(predicted(iris, data))]


def test_json_lines_records_are_filtered_by_member_and_joined_as_sagemaker_output(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    data = rows(iris, 5)
    source = tmp_path / "in" / "a.jsonl"
    source.parent.mkdir()
    source.write_text(
        "".join(json.dumps({"id": i, "features": list(r)}) + "\n" for i, r in enumerate(data))
    )

    run(
        tmp_path,
        model,
        source,
        content_type="application/jsonlines",
        input_filter="$.features",
        join_source="Input",
        output_filter="$['id','SageMakerOutput']",
    )

    records = [json.loads(x) for x in (tmp_path / "out" / "a.jsonl.out").read_text().splitlines()]
    assert records == [
        {"id": i, "SageMakerOutput": int(p)} for i, p in enumerate(predicted(iris, data))
    ]


def test_a_record_input_fn_rejects_fails_the_job_with_object_and_line(
    tmp_path: Path, iris: IrisModel, model: TransformModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "TASK_BYTES", 200)  # the bad line is in a later range
    source = write_csv(tmp_path / "in" / "b.csv", rows(iris, 100))
    lines = source.read_text().splitlines()
    lines[56] = "5.1,oops,1.4,0.2"
    source.write_text("\n".join(lines) + "\n")
    write_csv(tmp_path / "in" / "a.csv", rows(iris, 3))

    with pytest.raises(TransformError, match=r"input_fn rejected a record in b\.csv, line 57: "):
        run(tmp_path, model, tmp_path / "in")  # one worker: a.csv's task comes first

    # a.csv completed before; b.csv is not there, not even half of it
    leftovers = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert leftovers == [".mlcicd-transform.json", "a.csv.out"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"input_filter": "$[9]"}, r"--input-filter '\$\[9\]' in a.csv, line 1: matches nothing"),
        ({"content_type": "csv"}, "--content-type 'csv' is not a media type"),
        ({"split_type": "line"}, "--split-type 'line' is not one of None, Line"),
        ({"join_source": "Input", "content_type": "application/x-npy"}, "--join-source needs"),
        ({"input_filter": "$..x"}, r"--input-filter '\$\.\.x': cannot read"),
        ({"max_payload_mb": 101}, "--max-payload-mb 101 is out of range"),
    ],
)
def test_bad_settings_fail_naming_the_flag(
    tmp_path: Path,
    iris: IrisModel,
    model: TransformModel,
    settings: dict[str, object],
    message: str,
) -> None:
    source = write_csv(tmp_path / "in" / "a.csv", rows(iris, 3))
    with pytest.raises(TransformError, match=message):
        run(tmp_path, model, source, **settings)


def test_an_empty_input_and_others_files_in_the_output_are_refused(
    tmp_path: Path, iris: IrisModel, model: TransformModel, flipped: IrisModel
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TransformError, match=r"--input .*empty is empty"):
        run(tmp_path, model, tmp_path / "empty")

    source = write_csv(tmp_path / "in" / "a.csv", rows(iris, 3))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "report.pdf").write_text("mine")
    with pytest.raises(TransformError, match=r"--output .*taken holds files .*: report.pdf"):
        run(tmp_path, model, source, "taken")

    run(tmp_path, model, source)
    run(tmp_path, model, source, name="again")  # the same job again may take its output over
    other = TransformModel("iris-classifier/2", flipped.archive, flipped.sha256, model.code_dir)
    with pytest.raises(TransformError, match=r"--output .* holds the outputs of another"):
        run(tmp_path, other, source, name="other")
    with pytest.raises(TransformError, match=r"--output .* and --input .* overlap"):
        run(tmp_path, model, tmp_path / "in", "in/out")


def test_the_users_handlers_run_and_a_model_that_cannot_load_fails_the_job(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    data = rows(iris, 7)
    source = write_csv(tmp_path / "in" / "a.csv", data)
    example = TransformModel(model.ref, model.model_file, model.model_sha256, EXAMPLE_CODE)
    run(tmp_path, example, source, "named")
    names = ("setosa", "versicolor", "virginica")
    assert (tmp_path / "named" / "a.csv.out").read_text().splitlines() == [
        names[int(p)] for p in predicted(iris, data)
    ]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "inference.py").write_text("def model_fn(model_dir):\n    raise OSError('no disk')\n")
    with pytest.raises(TransformError, match=r"could not be loaded: model_fn .* OSError: no disk"):
        run(
            tmp_path,
            TransformModel(model.ref, model.model_file, model.model_sha256, broken),
            source,
            "b",
        )


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The worker processes each job of the test started (the job's own, as it keeps them)."""
    procs: list[subprocess.Popen[bytes]] = []
    start = local_module._Run.start_workers

    def recording(self: local_module._Run, count: int) -> None:
        try:
            start(self, count)
        finally:
            procs.extend(w.proc for w in self.workers)

    monkeypatch.setattr(local_module._Run, "start_workers", recording)
    return procs


def test_a_bad_model_found_after_the_workers_started_stops_them_and_writes_nothing(
    tmp_path: Path,
    iris: IrisModel,
    flipped: IrisModel,
    model: TransformModel,
    started: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_module, "TASK_BYTES", 200)  # work for two workers
    source = write_csv(tmp_path / "in" / "a.csv", rows(iris, 50))
    # another model's bytes under this model's digest: found while the workers load the code
    changed = TransformModel(model.ref, flipped.archive, iris.sha256, model.code_dir)

    with pytest.raises(ArtifactError, match=r"has sha256 .*, expected "):
        run(tmp_path, changed, source, max_concurrent=2)

    assert len(started) == 2  # they had started before the archive was checked ...
    assert all(proc.returncode is not None for proc in started)  # ... and are gone (reaped)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mlcicd-transform.json"]
    assert not (tmp_path / "jobs" / "models" / iris.sha256).exists()


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("import os\nos._exit(7)\n", r"a transform worker \(pid \d+\) exited with code 7"),
        ("raise ImportError('no such module: torch')\n", r"could not be loaded: .*no such mod"),
    ],
    ids=["dies", "fails"],
)
def test_a_worker_that_dies_or_fails_loading_the_code_fails_the_job_and_leaves_none(
    tmp_path: Path,
    iris: IrisModel,
    model: TransformModel,
    started: list[subprocess.Popen[bytes]],
    code: str,
    message: str,
) -> None:
    source = write_csv(tmp_path / "in" / "a.csv", rows(iris, 50))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "inference.py").write_text(code)  # run as the worker starts, before the model
    failing = TransformModel(model.ref, model.model_file, model.model_sha256, broken)

    with pytest.raises(TransformError, match=message) as raised:
        run(tmp_path, failing, source, max_concurrent=2, max_payload_mb=0.0005)

    assert raised.value.hint is not None and "job.log" in raised.value.hint
    assert started and all(proc.returncode is not None for proc in started)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mlcicd-transform.json"]


# Holds the objects of 51 rows (c and d), whichever worker gets them and whenever: not the
# third call — a worker can finish a and c before the other's first call on b.
HOLDING = """
import os, time
from mlcicd.serving.handlers import default_predict_fn

def predict_fn(data, model):
    gate = os.environ["GATE"]
    if len(data) == 51 and os.path.exists(gate + ".hold"):
        open(gate + ".reached", "w").close()
        while os.path.exists(gate + ".hold"):  # held here until the job is killed
            time.sleep(0.05)
    return default_predict_fn(data, model)
"""

JOB = """
import json, sys
from pathlib import Path
from mlcicd.transform import TransformJobSpec, TransformModel, TransformSettings
from mlcicd.transform.local import LocalTransformBackend
m = json.loads(sys.argv[1])
model = TransformModel(m["ref"], Path(m["file"]), m["sha"], Path(m["code"]), environment=m["env"])
two = TransformSettings(max_concurrent=2)
spec = TransformJobSpec("killed", model, m["input"], m["output"], two)
LocalTransformBackend(Path(m["root"])).run(spec)
"""


def test_a_rerun_after_kill_9_starts_clean_and_ends_with_the_same_outputs(
    tmp_path: Path, iris: IrisModel, model: TransformModel
) -> None:
    (model.code_dir / "inference.py").write_text(textwrap.dedent(HOLDING))
    gate = tmp_path / "gate"
    gate.with_suffix(".hold").write_text("")
    data = {"a": rows(iris, 50), "b": rows(iris, 50), "c": rows(iris, 51), "d": rows(iris, 51)}
    for name, part in data.items():
        write_csv(tmp_path / "in" / f"{name}.csv", part)
    held = TransformModel(
        model.ref,
        model.model_file,
        model.model_sha256,
        model.code_dir,
        environment={"GATE": str(gate)},
    )
    args = {
        "ref": held.ref,
        "file": str(held.model_file),
        "sha": held.model_sha256,
        "code": str(held.code_dir),
        "env": held.environment,
        "input": str(tmp_path / "in"),
        "output": str(tmp_path / "out"),
        "root": str(tmp_path / "jobs"),
    }
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, json.dumps(args)], start_new_session=True, cwd=tmp_path
    )
    try:
        # two workers: a and b done, c and d held (each one mini-batch, on either worker)
        done = [tmp_path / "out" / f"{name}.csv.out" for name in "ab"]
        wait_for(
            "the third mini-batch, and a and b written",
            lambda: gate.with_suffix(".reached").exists() and all(p.exists() for p in done),
        )
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.out")) == ["a.csv.out", "b.csv.out"]
    (out / "c.csv.out.mlcicd-tmp").write_text("half")  # as if killed while assembling

    gate.with_suffix(".hold").unlink()
    result = run(tmp_path, held, tmp_path / "in", name="rerun")

    assert result.rows_out == 202
    assert sorted(p.name for p in out.iterdir()) == [
        ".mlcicd-transform.json",
        "a.csv.out",
        "b.csv.out",
        "c.csv.out",
        "d.csv.out",
    ]
    for name, part in data.items():
        assert (out / f"{name}.csv.out").read_text().splitlines() == predicted(iris, part)


# -- one worker or several: the same bytes ------------------------------------------------

# A model that needs no scikit-learn (its workers start in a blink): each row's answer is its
# sum, in tenths. Each worker's model_fn records its pid, its thread-pool size and whether the
# cyclic GC ran while it loaded; each mini-batch, whether the GC runs and the load is frozen.
SUMMING = """
import gc
import os
import numpy as np

def model_fn(model_dir):
    with open(os.environ["LOADS"], "a") as fh:
        fh.write(f"{os.getpid()} {os.environ.get('OMP_NUM_THREADS')} {gc.isenabled()}\\n")
    return "summing"

def predict_fn(data, model):
    with open(os.environ["LOADS"] + ".gc", "a") as fh:
        fh.write(f"{gc.isenabled()} {gc.get_freeze_count() > 0}\\n")
    return np.rint(np.asarray(data, dtype=float).sum(axis=1) * 10).astype(int)
"""


@pytest.fixture(scope="module")
def summing(tmp_path_factory: pytest.TempPathFactory, iris: IrisModel) -> TransformModel:
    code = tmp_path_factory.mktemp("summing")
    (code / "inference.py").write_text(textwrap.dedent(SUMMING))
    loads = str(code / "loads.txt")
    return TransformModel(
        "summing/1", iris.archive, iris.sha256, code, environment={"LOADS": loads}
    )


def summed(data: np.ndarray) -> list[str]:
    return [str(int(v)) for v in np.rint(data.sum(axis=1) * 10)]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"batch_strategy": "SingleRecord", "assemble_with": "None"},
        {"input_filter": "$[1:]", "join_source": "Input", "output_filter": "$[0,-1]"},
    ],
    ids=["multi-record", "single-record", "filter-join"],
)
def test_three_workers_write_the_same_bytes_as_one_across_ranges_cut_anywhere(
    tmp_path: Path,
    iris: IrisModel,
    summing: TransformModel,
    monkeypatch: pytest.MonkeyPatch,
    settings: dict[str, object],
) -> None:
    monkeypatch.setattr(local_module, "TASK_BYTES", 333)  # ranges cut inside lines
    ids = "join_source" in settings
    data = rows(iris, 400)
    a = write_csv(tmp_path / "in" / "a.csv", data, ids=ids)
    if not ids:  # blank lines between records, no newline at the end
        lines = a.read_text().splitlines()
        a.write_text("\n".join(x + ("\n" if i % 37 else "\n\n") for i, x in enumerate(lines))[:-1])
    write_csv(tmp_path / "in" / "b.csv", data[:3], ids=ids)
    loads = Path(summing.environment["LOADS"])
    loads.unlink(missing_ok=True)
    batches = Path(f"{loads}.gc")
    batches.unlink(missing_ok=True)

    one = run(tmp_path, summing, tmp_path / "in", "one", "one", max_payload_mb=0.0005, **settings)
    three = run(
        tmp_path,
        summing,
        tmp_path / "in",
        "three",
        "three",
        max_payload_mb=0.0005,
        max_concurrent=3,
        **settings,
    )

    for name in ("a.csv.out", "b.csv.out"):
        assert (tmp_path / "three" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    answers = summed(data)
    if ids:
        answers = [f"id-{i},{s}" for i, s in enumerate(answers)]
    # (the CSV answer to one record ends with its newline: AssembleWith None adds none)
    assert (tmp_path / "one" / "a.csv.out").read_text() == "".join(s + "\n" for s in answers)
    assert (one.rows_in, one.rows_out) == (three.rows_in, three.rows_out) == (403, 403)
    # Three workers share the cores: each one's thread pools are sized to its share (one
    # still loading when the others had done every task was stopped before it wrote).
    pools = [line.split()[1] for line in loads.read_text().splitlines()]
    assert pools[0] == str(os.cpu_count() or 1)
    assert 1 <= len(pools[1:]) <= 3 and set(pools[1:]) == {str(max(1, (os.cpu_count() or 1) // 3))}
    # Every model loaded with the cyclic GC paused; every batch scored with it running again
    # and the load out of its reach (serving.handlers.gc_paused_while_loading).
    assert {line.split()[2] for line in loads.read_text().splitlines()} == {"False"}
    assert set(batches.read_text().splitlines()) == {"True True"}


def test_a_refused_record_is_named_by_its_line_whichever_worker_read_its_range(
    tmp_path: Path, iris: IrisModel, summing: TransformModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_module, "TASK_BYTES", 150)
    source = write_csv(tmp_path / "in" / "b.csv", rows(iris, 300))
    lines = source.read_text().splitlines()
    lines[200] = "5.1,oops,1.4,0.2"
    lines[20:20] = ["", ""]  # blank lines before it count as lines
    source.write_text("\n".join(lines) + "\n")

    with pytest.raises(TransformError, match=r"input_fn rejected a record in b\.csv, line 203: "):
        run(tmp_path, summing, source, max_concurrent=3, max_payload_mb=0.0005)

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".mlcicd-transform.json"]


def test_tasks_shrink_toward_the_end_and_cover_each_object_once(tmp_path: Path) -> None:
    def obj(name: str, size: int) -> local_module.InputObject:
        return local_module.InputObject(name, tmp_path / name, size)

    big, small = obj("big.csv", 50 << 20), obj("small.csv", 10 << 10)
    tasks = local_module.plan_tasks([big, small], tmp_path, "Line", "None", 2)

    ranges = [(t.start, t.end) for t in tasks if t.obj is big]
    assert ranges[0][0] == 0 and ranges[-1][1] == big.size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [end - start for start, end in ranges if end is not None]
    assert max(sizes) == local_module.TASK_BYTES and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] < local_module.TASK_BYTES // 8  # the last ones small: workers end together
    assert [(t.start, t.end) for t in tasks if t.obj is small] == [(0, None)]
    for split, compression in (("None", "None"), ("Line", "Gzip")):  # cannot be entered midway
        whole = local_module.plan_tasks([big], tmp_path, split, compression, 2)
        assert [(t.start, t.end, t.whole) for t in whole] == [(0, None, split == "None")]
