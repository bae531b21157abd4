"""Micro-batching: concurrent requests share a predict_fn call, and each gets its own answer."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcicd.errors import EndpointError
from mlcicd.serving import batching, codecs
from mlcicd.serving.batching import Batcher, batchable, batcher_for
from mlcicd.serving.codecs import BadRequestError
from mlcicd.serving.handlers import HandlerError, LoadedVariant, load_handlers
from tests.helpers import IrisModel
from tests.serving.helpers import CONTEXT_HANDLERS, NO_HANDLERS, write_code

# A user's batch-capable predict_fn that records every call's row count and refuses
# negative first features (a bad row), to see where failures land.
RECORDING = """
    import joblib, os
    import numpy as np

    CALLS = []

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        CALLS.append(len(data))
        if (np.asarray(data)[:, 0] < 0).any():
            raise ValueError("negative sepal length")
        return model.predict(data)

    predict_fn.supports_batching = True
"""

WRONG_LENGTH = """
    import joblib, os

    CALLS = []

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        CALLS.append(len(data))
        return model.predict(data)[:1]  # one answer, whatever was asked

    predict_fn.supports_batching = True
"""

NOT_DECLARED = """
    def predict_fn(data, model):
        return model.predict(data)
"""


def variant_for(code_dir: Path, script: str, iris: IrisModel) -> LoadedVariant:
    handlers = load_handlers(write_code(code_dir, textwrap.dedent(script)))
    return LoadedVariant("AllTraffic", handlers, handlers.load_model(iris.model_dir))


def body(rows: Any) -> bytes:
    return json.dumps(np.asarray(rows).tolist()).encode()


async def invoke_all(batcher: Batcher, bodies: list[bytes]) -> list[Any]:
    async def one(payload: bytes) -> Any:
        out, _ = await batcher.invoke(payload, codecs.JSON, codecs.JSON)
        return json.loads(out)

    return await asyncio.gather(*(one(b) for b in bodies), return_exceptions=True)


def test_concurrent_requests_each_get_their_own_answer(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, NO_HANDLERS, iris)
    batcher = Batcher(variant)
    rng = np.random.default_rng(3)
    rows = [iris.X[i % len(iris.X)] + rng.normal(scale=0.5, size=4) for i in range(300)]
    sizes = [1 + i % 3 for i in range(300)]  # one to three rows per request
    requests = [
        np.vstack([r] * n) + np.arange(n)[:, None] * 0.01 for r, n in zip(rows, sizes, strict=True)
    ]
    answers = asyncio.run(invoke_all(batcher, [body(r) for r in requests]))
    for request, answer in zip(requests, answers, strict=True):
        assert answer == iris.model.predict(request).tolist()
    assert batcher.batches >= 1 and batcher.batched_requests > 1  # they were batched


def test_a_lone_request_is_not_kept_waiting(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, NO_HANDLERS, iris)
    for wait in (0.0, 0.005):  # flushed on the next loop iteration, or by the timer
        batcher = Batcher(variant, max_wait=wait)
        out = asyncio.run(asyncio.wait_for(invoke_all(batcher, [body(iris.X[:1])]), 30))
        assert out == [iris.model.predict(iris.X[:1]).tolist()]


def test_batches_are_bounded(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, RECORDING, iris)
    calls = variant.handlers.module.CALLS
    batcher = Batcher(variant, max_rows=4)
    bodies = [body(iris.X[i : i + 1]) for i in range(10)] + [body(iris.X[:6])]  # 6 > max: alone
    answers = asyncio.run(invoke_all(batcher, bodies))
    assert answers[:10] == [[int(iris.model.predict(iris.X[i : i + 1])[0])] for i in range(10)]
    assert answers[10] == iris.model.predict(iris.X[:6]).tolist()
    assert max(calls) == 6 and sorted(calls)[:-1] == [2, 4, 4]


def test_a_failing_request_fails_alone(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, RECORDING, iris)
    batcher = Batcher(variant)
    bad = iris.X[:1].copy()
    bad[0, 0] = -1
    bodies = [body(iris.X[i : i + 1]) for i in range(5)]
    bodies.insert(2, body(bad))
    bodies.append(b"[1, 2")  # not JSON: refused before it reaches the queue
    answers = asyncio.run(invoke_all(batcher, bodies))
    assert isinstance(answers[2], HandlerError) and "negative sepal length" in answers[2].message
    assert isinstance(answers[-1], BadRequestError)
    good = [a for i, a in enumerate(answers[:-1]) if i != 2]
    assert good == [[int(iris.model.predict(iris.X[i : i + 1])[0])] for i in range(5)]


def test_an_answer_of_the_wrong_length_is_redone_per_request(
    code_dir: Path, iris: IrisModel
) -> None:
    variant = variant_for(code_dir, WRONG_LENGTH, iris)
    batcher = Batcher(variant)
    answers = asyncio.run(invoke_all(batcher, [body(iris.X[i : i + 1]) for i in range(4)]))
    assert answers == [[int(iris.model.predict(iris.X[i : i + 1])[0])] for i in range(4)]
    assert variant.handlers.module.CALLS == [4, 1, 1, 1, 1]


def test_dtypes_and_widths_are_not_mixed(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, RECORDING, iris)
    batcher = Batcher(variant)
    ints = np.rint(iris.X[:3]).astype(int)
    bodies = [body(ints[0:1]), body(iris.X[0:1]), body(ints[1:2]), body(iris.X[1:2])]
    bodies.append(b"[1.0, 2.0]")  # too narrow for the model: its own error
    answers = asyncio.run(invoke_all(batcher, bodies))
    assert answers[0] == iris.model.predict(ints[0:1]).tolist()
    assert answers[3] == iris.model.predict(iris.X[1:2]).tolist()
    assert isinstance(answers[4], HandlerError)  # a user predict_fn: sklearn's own error
    assert sorted(variant.handlers.module.CALLS) == [1, 2, 2]


def test_cancelled_requests_do_not_break_the_batch(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, NO_HANDLERS, iris)
    batcher = Batcher(variant)

    async def scenario() -> list[Any]:
        first = batcher.submit(iris.X[:1])
        second = batcher.submit(iris.X[1:2])
        first.cancel()  # the client went away
        return [await second]

    (answer,) = asyncio.run(scenario())
    assert answer.tolist() == iris.model.predict(iris.X[1:2]).tolist()


def test_a_task_awaiting_its_batch_is_woken_as_by_a_future_and_can_be_cancelled(
    code_dir: Path, iris: IrisModel
) -> None:
    """A request's place in a batch (Hop) is no asyncio future: a task (uvicorn's path)
    awaits it all the same — woken on a later iteration, never inside the flush — and a
    task cancelled while queued ends cancelled, without costing the others their answers."""
    variant = variant_for(code_dir, NO_HANDLERS, iris)
    batcher = Batcher(variant)
    order: list[str] = []

    async def one(rows: Any, name: str) -> Any:
        answer = await batcher.submit(rows)
        order.append(name)
        return answer

    async def scenario() -> tuple[list[Any], list[str]]:
        tasks = [asyncio.create_task(one(iris.X[i : i + 1], str(i))) for i in range(3)]
        await asyncio.sleep(0)  # all three queued
        tasks[1].cancel()
        asyncio.get_running_loop().call_soon(order.append, "flushed")
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return results, order

    results, seen = asyncio.run(scenario())
    assert isinstance(results[1], asyncio.CancelledError)
    assert [r.tolist() for r in (results[0], results[2])] == [
        iris.model.predict(iris.X[i : i + 1]).tolist() for i in (0, 2)
    ]
    assert seen == ["flushed", "0", "2"]  # woken after the flush's iteration, in order
    assert batcher.batches == 1 and batcher.batched_requests == 2


def test_who_is_batched(code_dir: Path, iris: IrisModel, monkeypatch: pytest.MonkeyPatch) -> None:
    assert batchable(variant_for(code_dir / "a", NO_HANDLERS, iris))
    assert batchable(variant_for(code_dir / "b", RECORDING, iris))
    assert not batchable(variant_for(code_dir / "c", NOT_DECLARED, iris))
    assert not batchable(variant_for(code_dir / "d", CONTEXT_HANDLERS, iris))
    monkeypatch.setenv("MLCICD_BATCHING", "0")
    assert not batchable(variant_for(code_dir / "e", NO_HANDLERS, iris))


def test_invoke_without_batching_is_the_plain_path(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, NOT_DECLARED, iris)
    assert batcher_for(variant) is None
    out, content_type = asyncio.run(
        batching.invoke(variant, body(iris.X[:2]), codecs.JSON, codecs.JSON)
    )
    assert json.loads(out) == iris.model.predict(iris.X[:2]).tolist()
    assert content_type == codecs.JSON
    default = variant_for(code_dir / "default", NO_HANDLERS, iris)
    assert batcher_for(default) is batcher_for(default) is not None


def test_a_new_event_loop_starts_clean(code_dir: Path, iris: IrisModel) -> None:
    variant = variant_for(code_dir, NO_HANDLERS, iris)
    batcher = Batcher(variant, max_wait=600)

    async def leave_one_queued() -> None:
        batcher.submit(iris.X[:1])  # the loop ends long before its timed flush

    loop = asyncio.new_event_loop()
    loop.run_until_complete(leave_one_queued())
    loop.close()
    batcher.max_wait = 0
    answers = asyncio.run(asyncio.wait_for(invoke_all(batcher, [body(iris.X[:2])]), 30))
    assert answers == [iris.model.predict(iris.X[:2]).tolist()]


BREAKS_ON_A_BATCH = """
    import joblib, os

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        if len(data) > 1:
            raise RuntimeError("one row at a time")
        return model.predict(data)

    predict_fn.supports_batching = True
"""

ROW_ZERO_ONLY = """
    import joblib, os

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        return [int(model.predict(data[:1])[0])] * len(data)  # every row gets row 0's answer

    predict_fn.supports_batching = True
"""

IRIS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris" / "src"


@pytest.mark.parametrize(
    ("script", "match"),
    [
        (BREAKS_ON_A_BATCH, r"raised on a batch of 4 rows .*RuntimeError: one row at a time"),
        (WRONG_LENGTH, r"its answer to a batch of 4 rows \(ndarray\[1\]\)"),
        (ROW_ZERO_ONLY, r"is not its answers to those rows one at a time"),
    ],
)
def test_a_predict_fn_that_opts_in_and_breaks_on_a_batch_fails_at_load(
    code_dir: Path, iris: IrisModel, script: str, match: str
) -> None:
    variant = variant_for(code_dir, script, iris)
    with pytest.raises(EndpointError, match=r"predict_fn of inference.py declares") as caught:
        batching.check_batching(variant)
    assert caught.match(match)
    assert "supports_batching" in str(caught.value.hint)


def test_batch_safe_and_undeclared_handlers_pass_the_check(
    code_dir: Path, iris: IrisModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    batching.check_batching(variant_for(code_dir / "a", NO_HANDLERS, iris))
    batching.check_batching(variant_for(code_dir / "b", NOT_DECLARED, iris))
    batching.check_batching(variant_for(code_dir / "c", RECORDING, iris))
    monkeypatch.setenv("MLCICD_BATCHING", "0")  # not batched: not checked
    batching.check_batching(variant_for(code_dir / "d", ROW_ZERO_ONLY, iris))


def test_the_iris_examples_handlers_are_batched_with_their_dict_answers(iris: IrisModel) -> None:
    """examples/iris (the `mlcicd init` template) opts in: its dict of per-row lists is split
    key by key, and each request gets exactly what it gets alone."""
    handlers = load_handlers(IRIS_EXAMPLE)
    assert handlers.predict_fn.supports_batching is True
    variant = LoadedVariant("AllTraffic", handlers, handlers.load_model(iris.model_dir))
    batching.check_batching(variant)
    batcher = Batcher(variant)
    requests = [iris.X[i : i + 1 + i % 2] for i in range(0, 60, 3)]
    answers = asyncio.run(invoke_all(batcher, [body(r) for r in requests]))
    for request, answer in zip(requests, answers, strict=True):
        alone = json.loads(variant.invoke(body(request), codecs.JSON, codecs.JSON)[0])
        assert answer["predictions"] == alone["predictions"] == iris.model.predict(request).tolist()
        assert answer["labels"] == alone["labels"]
        # a matrix product over more rows may round the last bit differently (so may sklearn's)
        np.testing.assert_allclose(answer["probabilities"], alone["probabilities"], atol=1e-12)
    assert batcher.batches >= 1 and batcher.batched_requests > 1
