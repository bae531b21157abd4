"""The user's inference script, resolved the way SageMaker's containers resolve it.

``inference.py`` may define ``model_fn(model_dir)``, then either the chain
``input_fn(body, content_type)`` → ``predict_fn(data, model)`` → ``output_fn(prediction,
accept)`` or ``transform_fn(model, body, content_type, accept)`` in its place. A missing
handler gets SageMaker's default (see :mod:`mlcicd.serving.codecs` for the codecs):

    model_fn      load model.joblib / model.pkl / model.pickle from the model dir
    input_fn      decode JSON / CSV / NPY / JSON Lines into a numpy array
    predict_fn    ``model.predict(data)``
    output_fn     encode by accept into JSON / CSV / NPY / JSON Lines

As in the inference toolkit, JSON/CSV bodies reach ``input_fn``/``transform_fn`` as ``str``
and other types as ``bytes``, a handler taking one more parameter than the contract gets an
:class:`InvocationContext` as its last argument, and ``output_fn`` may return the body or a
``(body, content_type)`` tuple.

Who is to blame decides the status: an ``input_fn`` raising ``ValueError``/``TypeError``/
``LookupError`` (or a codec refusing the body) is the client's fault, 4xx; anything raised by
``predict_fn``, ``output_fn`` or ``transform_fn`` is the model's, 500 with its message. One
addition to SageMaker: with the default ``predict_fn``, rows whose width differs from the
estimator's ``n_features_in_`` are refused with a 400 before the model is called.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mlcicd import compiler
from mlcicd.errors import EndpointError
from mlcicd.serving import codecs
from mlcicd.serving.codecs import BadRequestError, InvocationError

MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle")
CLIENT_ERRORS = (ValueError, TypeError, LookupError)
_CONTRACT = {
    "model_fn": ("model_dir",),
    "input_fn": ("input_data", "content_type"),
    "predict_fn": ("data", "model"),
    "output_fn": ("prediction", "accept"),
    "transform_fn": ("model", "input_data", "content_type", "accept"),
}

Handler = Callable[..., Any]


class HandlerError(InvocationError):
    """The user's code raised while answering a request: a 500 with its message."""

    status = 500
    error_type = "ModelError"

    def __init__(self, stage: str, exc: BaseException) -> None:
        super().__init__(f"{stage} raised {describe_exception(exc)}")
        self.stage = stage


@dataclass(slots=True)
class InvocationContext:
    """What a context-taking handler gets as its last argument.

    Set ``response_custom_attributes`` to answer with an ``X-Amzn-SageMaker-Custom-Attributes``
    header: as on SageMaker, the model's code decides what (if anything) goes back.
    """

    variant: str
    custom_attributes: str | None = None
    request_id: str | None = None
    response_custom_attributes: str | None = None


@dataclass(frozen=True)
class InferenceHandlers:
    """The handlers of one inference script, defaults filled in."""

    script: Path
    module: ModuleType
    model_fn: Handler
    input_fn: Handler
    predict_fn: Handler
    output_fn: Handler
    transform_fn: Handler | None
    default_output: bool  # output_fn is SageMaker's: the accept can be checked before predicting
    with_context: frozenset[str]  # handlers that take the trailing context argument

    @property
    def wants_context(self) -> bool:
        return bool(self.with_context)

    def load_model(self, model_dir: Path | str) -> Any:
        """Run ``model_fn``; its failure is an :class:`EndpointError` with the cause."""
        args: tuple[Any, ...] = (str(model_dir),)
        if "model_fn" in self.with_context:
            args += (None,)
        try:
            return self.model_fn(*args)
        except EndpointError:
            raise
        except Exception as exc:
            raise EndpointError(
                f"model_fn of {self.script.name} raised {describe_exception(exc)}",
                hint="see the endpoint log for the traceback",
            ) from exc


@contextlib.contextmanager
def gc_paused_while_loading() -> Iterator[None]:
    """Load a model — its code, its libraries, ``model_fn`` — with the cyclic GC paused; once
    it is loaded, move everything loaded out of the GC's reach for the process's life.

    Importing scikit-learn, SciPy and pandas makes about a million objects that live as long
    as the worker; while the heap grows, each full collection it triggers walks them all
    again: ~10 % of a worker's start (docs/benchmarks.md). Loaded, they stay until the worker
    ends, so no later collection need walk them either (a full collection of a loaded
    scikit-learn takes ~25 ms, which stalled the requests in flight). No collection runs
    before the freeze: it would cost about what the pause saved, to free the ~1,100 cyclic
    objects the imports leave — those, and any cycle ``model_fn`` left, stay allocated until
    the worker ends: an amount paid once, not a leak that grows. A load that fails freezes
    nothing (the worker reports it and ends)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def describe_exception(exc: BaseException) -> str:
    """``ValueError: boom (inference.py, line 12)`` — the message and where it came from."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return (
            f"{type(exc).__name__}: {exc.msg} ({os.path.basename(exc.filename)}, line {exc.lineno})"
        )
    text = f"{type(exc).__name__}: {exc}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" ({os.path.basename(last.filename)}, line {last.lineno})"
    return text


def load_handlers(code_dir: Path, entry_point: str = "inference.py") -> InferenceHandlers:
    """Import ``code_dir/entry_point`` under a unique module name and resolve its handlers."""
    if not entry_point.endswith(".py"):
        entry_point += ".py"
    script = (Path(code_dir) / entry_point).resolve()
    if not script.is_file():
        raise EndpointError(
            f"inference script {script} does not exist",
            hint="check the entry point (SAGEMAKER_PROGRAM) and the code directory",
        )
    module = _import_script(script)
    found = {name: getattr(module, name, None) for name in _CONTRACT}
    for name, fn in found.items():
        if fn is not None and not callable(fn):
            raise EndpointError(f"{script.name}: {name} is a {type(fn).__name__}, not a function")
    transform_fn = found["transform_fn"]
    if transform_fn is not None and any(found[n] for n in ("input_fn", "predict_fn", "output_fn")):
        raise EndpointError(
            f"{script.name} defines transform_fn together with input_fn/predict_fn/output_fn",
            hint="define either transform_fn or the input_fn/predict_fn/output_fn chain",
        )
    model_fn = found["model_fn"] or _default_model_fn_for(script)
    handlers: dict[str, Handler] = {
        "model_fn": model_fn,
        "input_fn": found["input_fn"] or codecs.decode,
        "predict_fn": found["predict_fn"] or default_predict_fn,
        "output_fn": found["output_fn"] or codecs.encode,
    }
    if transform_fn is not None:
        handlers["transform_fn"] = transform_fn
    with_context = frozenset(
        name for name, fn in handlers.items() if _takes_context(script, name, fn)
    )
    return InferenceHandlers(
        script=script,
        module=module,
        model_fn=model_fn,
        input_fn=handlers["input_fn"],
        predict_fn=handlers["predict_fn"],
        output_fn=handlers["output_fn"],
        transform_fn=transform_fn,
        default_output=transform_fn is None and found["output_fn"] is None,
        with_context=with_context,
    )


def _import_script(script: Path) -> ModuleType:
    code_dir = str(script.parent)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)  # so the script's own `import utils` works
    digest = hashlib.sha256(str(script).encode()).hexdigest()[:12]
    name = f"mlcicd_user_{script.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise EndpointError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pickle and dataclasses look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        hint = (
            "add the missing package to requirements.txt" if isinstance(exc, ImportError) else None
        )
        raise EndpointError(
            f"cannot import {script.name}: {describe_exception(exc)}", hint=hint
        ) from exc
    return module


def _takes_context(script: Path, name: str, fn: Handler) -> bool:
    expected = len(_CONTRACT[name])
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins, some C callables: call with the contract
        return False
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return False
    if len(params) == expected:
        return False
    if len(params) == expected + 1:
        return True
    contract = ", ".join(_CONTRACT[name])
    raise EndpointError(
        f"{script.name}: {name} takes {len(params)} argument(s); SageMaker calls it with "
        f"({contract}) or ({contract}, context)"
    )


def _default_model_fn_for(script: Path) -> Handler:
    def default_model_fn(model_dir: str) -> Any:
        for filename in MODEL_FILES:
            path = os.path.join(model_dir, filename)
            if os.path.isfile(path):
                return _load_model_file(path)
        raise EndpointError(
            f"{script.name} defines no model_fn, and {model_dir} holds none of "
            f"{', '.join(MODEL_FILES)}",
            hint="define model_fn(model_dir) in the inference script to load the model",
        )

    return default_model_fn


def _load_model_file(path: str) -> Any:
    try:
        joblib = importlib.import_module("joblib")
    except ImportError:
        if path.endswith(".joblib"):
            raise EndpointError(
                f"cannot load {path}: joblib is not installed in the model's environment",
                hint="add scikit-learn or joblib to requirements.txt",
            ) from None
        with open(path, "rb") as fh:
            return pickle.load(fh)
    # joblib reads plain pickles too, and .pkl files written by joblib.dump are not plain
    return joblib.load(path)


def default_predict_fn(data: Any, model: Any) -> Any:
    """SageMaker scikit-learn's default: ``model.predict(data)``.

    Through the model's lean predictor when :class:`LoadedVariant` compiled one at load
    (:mod:`mlcicd.compiler`): the same answers without scikit-learn's per-call cost.
    """
    lean = compiler.lookup(model)
    if lean is not None:
        return lean.predict(data)
    predict = getattr(model, "predict", None)
    if predict is None:
        raise TypeError(
            f"the model ({type(model).__name__}) has no predict method; define predict_fn in the "
            "inference script"
        )
    return predict(data)


class LoadedVariant:
    """A production variant ready to answer: its handlers and its loaded model."""

    __slots__ = ("compile_pending", "compiled", "handlers", "model", "n_features", "name", "weight")

    def __init__(
        self,
        name: str,
        handlers: InferenceHandlers,
        model: Any,
        weight: float = 1.0,
        *,
        compile_now: bool = True,
    ) -> None:
        self.name = name
        self.handlers = handlers
        self.model = model
        self.weight = weight
        # With the default predict_fn, a row of the wrong width is the client's mistake (400),
        # told before the model is called; scikit-learn estimators say how wide rows must be.
        width = (
            getattr(model, "n_features_in_", None)
            if handlers.predict_fn is default_predict_fn
            else None
        )
        self.n_features: int | None = width if isinstance(width, int) else None
        self.compiled: tuple[str, ...] = ()
        self.compile_pending = True
        if compile_now:
            self.compile()

    def compile(self) -> None:
        """Compile and verify the model's lean predictor, once: at load, not per request (an
        endpoint), or before the first call small enough to take it (a transform worker,
        whose mini-batches are mostly too large: :data:`mlcicd.compiler.LEAN_ROWS`). A user's
        predict_fn (or transform_fn) calls the model's methods itself: they are answered
        through the compiled code, bound on the model (compiler.bind_methods). Which methods
        were compiled is what `endpoints describe` says."""
        if not self.compile_pending:
            return
        self.compile_pending = False
        h = self.handlers
        if h.transform_fn is not None or h.predict_fn is not default_predict_fn:
            self.compiled = compiler.bind_methods(self.model)
        elif compiler.register(self.model) is not None:
            self.compiled = ("predict",)

    def invoke(
        self, body: bytes, content_type: str, accept: str, context: InvocationContext | None = None
    ) -> tuple[bytes, str]:
        """One request through the handlers: body → (response body, response content type)."""
        h = self.handlers
        if h.transform_fn is not None:
            return self.transform(body, content_type, accept, context)
        data = self.read_input(body, content_type, context)
        prediction = self.predict(data, context)
        return self.write_output(prediction, accept, context)

    def transform(
        self, body: bytes, content_type: str, accept: str, context: InvocationContext | None
    ) -> tuple[bytes, str]:
        """``transform_fn`` in place of the input → predict → output chain."""
        h = self.handlers
        assert h.transform_fn is not None
        data_in = _text_body(body, content_type)
        try:
            if "transform_fn" in h.with_context:
                result = h.transform_fn(self.model, data_in, content_type, accept, context)
            else:
                result = h.transform_fn(self.model, data_in, content_type, accept)
        except InvocationError:
            raise
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"transform_fn could not parse the body: {exc}") from exc
        except Exception as exc:
            raise HandlerError("transform_fn", exc) from exc
        return _response(result, accept, "transform_fn")

    def read_input(
        self, body: bytes, content_type: str, context: InvocationContext | None = None
    ) -> Any:
        """``input_fn`` on the body, and the default predict_fn's width check: the data."""
        h = self.handlers
        data_in = _text_body(body, content_type)
        try:
            if "input_fn" in h.with_context:
                data = h.input_fn(data_in, content_type, context)
            else:
                data = h.input_fn(data_in, content_type)
        except InvocationError:
            raise
        except CLIENT_ERRORS as exc:
            raise BadRequestError(
                f"input_fn rejected the request: {describe_exception(exc)}"
            ) from exc
        except Exception as exc:
            raise HandlerError("input_fn", exc) from exc
        width = self.n_features
        if (
            width is not None
            and isinstance(data, np.ndarray)
            and data.ndim == 2
            and data.shape[1] != width
        ):
            raise BadRequestError(
                f"each row must have {width} values (the model's features), got {data.shape[1]}"
            )
        return data

    def predict(self, data: Any, context: InvocationContext | None = None) -> Any:
        """``predict_fn`` on decoded data (one request's, or a micro-batch of them)."""
        h = self.handlers
        try:
            if "predict_fn" in h.with_context:
                return h.predict_fn(data, self.model, context)
            return h.predict_fn(data, self.model)
        except InvocationError:
            raise
        except Exception as exc:
            raise HandlerError("predict_fn", exc) from exc

    def write_output(
        self, prediction: Any, accept: str, context: InvocationContext | None = None
    ) -> tuple[bytes, str]:
        """``output_fn`` on one request's prediction: (response body, content type)."""
        h = self.handlers
        try:
            if "output_fn" in h.with_context:
                result = h.output_fn(prediction, accept, context)
            else:
                result = h.output_fn(prediction, accept)
        except InvocationError:
            raise
        except Exception as exc:
            raise HandlerError("output_fn", exc) from exc
        return _response(result, accept, "output_fn")


def _text_body(body: bytes, content_type: str) -> bytes | str:
    """JSON/CSV/JSON Lines bodies reach the handlers as str, as in the inference toolkit."""
    if content_type in codecs.UTF8_TYPES:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequestError(f"{content_type} body is not valid UTF-8: {exc}") from exc
    return body


def _response(result: Any, accept: str, stage: str) -> tuple[bytes, str]:
    content_type: Any = accept
    if isinstance(result, tuple) and len(result) == 2:
        result, content_type = result
    if isinstance(result, bytes):
        body = result
    elif isinstance(result, str):
        body = result.encode("utf-8")
    elif isinstance(result, bytearray | memoryview):
        body = bytes(result)
    else:
        raise HandlerError(
            stage,
            TypeError(
                f"{stage} must return bytes, str or (body, content_type), not "
                f"{type(result).__name__}"
            ),
        )
    if (
        not isinstance(content_type, str)
        or not content_type.isprintable()
        or not content_type.isascii()
    ):
        raise HandlerError(
            stage, TypeError(f"{stage} returned an invalid content type {content_type!r}")
        )
    return body, content_type
