from __future__ import annotations

import gc
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlcicd import compiler
from mlcicd.errors import EndpointError
from mlcicd.serving import codecs
from mlcicd.serving.codecs import BadRequestError, UnsupportedMediaTypeError
from mlcicd.serving.handlers import (
    HandlerError,
    InvocationContext,
    LoadedVariant,
    default_predict_fn,
    gc_paused_while_loading,
    load_handlers,
)
from tests.helpers import IrisModel
from tests.serving.helpers import (
    CONTEXT_HANDLERS,
    FULL_HANDLERS,
    MODEL_FN_RAISES,
    NO_HANDLERS,
    PREDICT_FN_RAISES,
    TRANSFORM_FN,
    write_code,
)


def loaded(code_dir: Path, script: str, iris: IrisModel) -> LoadedVariant:
    handlers = load_handlers(write_code(code_dir, script))
    return LoadedVariant("AllTraffic", handlers, handlers.load_model(iris.model_dir))


def test_defaults_when_no_handler_is_defined(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, NO_HANDLERS, iris)
    assert variant.handlers.input_fn is codecs.decode
    assert variant.handlers.predict_fn is default_predict_fn
    assert variant.handlers.default_output
    body, content_type = variant.invoke(
        json.dumps(iris.X[:5].tolist()).encode(), codecs.JSON, codecs.JSON
    )
    assert content_type == "application/json"
    assert json.loads(body) == iris.model.predict(iris.X[:5]).tolist()


def test_all_four_handlers(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, FULL_HANDLERS, iris)
    assert not variant.handlers.default_output
    request = json.dumps({"instances": iris.X[:3].tolist()}).encode()
    body, content_type = variant.invoke(request, codecs.JSON, "text/csv")
    assert content_type == "application/json"  # output_fn's tuple wins over the accept
    assert json.loads(body)["labels"] == iris.model.predict(iris.X[:3]).tolist()


def test_user_input_fn_value_error_is_the_clients_fault(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, FULL_HANDLERS, iris)
    with pytest.raises(BadRequestError, match="only reads application/json"):
        variant.invoke(b"1,2,3,4", codecs.CSV, codecs.JSON)
    with pytest.raises(BadRequestError, match="KeyError"):
        variant.invoke(b"{}", codecs.JSON, codecs.JSON)


def test_predict_fn_error_is_the_models(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, PREDICT_FN_RAISES, iris)
    with pytest.raises(
        HandlerError,
        match=r"predict_fn raised ZeroDivisionError: negative sepals .*inference.py, line",
    ):
        variant.invoke(b"[[-1, 2, 3, 4]]", codecs.JSON, codecs.JSON)
    assert HandlerError.status == 500


def test_wrong_row_width_is_a_bad_request_with_the_default_predict_fn(
    code_dir: Path, iris: IrisModel
) -> None:
    variant = loaded(code_dir, NO_HANDLERS, iris)
    with pytest.raises(BadRequestError, match="4 values"):
        variant.invoke(b"[[1, 2, 3]]", codecs.JSON, codecs.JSON)


def test_transform_fn(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, TRANSFORM_FN, iris)
    body, _ = variant.invoke(json.dumps(iris.X[:2].tolist()).encode(), codecs.JSON, codecs.JSON)
    assert json.loads(body) == {"predictions": iris.model.predict(iris.X[:2]).tolist()}
    with pytest.raises(BadRequestError, match="could not parse"):
        variant.invoke(b"[1, 2", codecs.JSON, codecs.JSON)


def test_transform_fn_with_the_chain_is_refused(code_dir: Path) -> None:
    write_code(
        code_dir,
        textwrap.dedent(TRANSFORM_FN) + "\ndef input_fn(body, content_type):\n    return body\n",
    )
    with pytest.raises(EndpointError, match="transform_fn together with"):
        load_handlers(code_dir)


def test_context_argument(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, CONTEXT_HANDLERS, iris)
    assert variant.handlers.with_context == {"predict_fn"}
    context = InvocationContext(variant="AllTraffic", custom_attributes="trace=1")
    variant.invoke(b"[[5.1, 3.5, 1.4, 0.2]]", codecs.JSON, codecs.JSON, context)
    assert context.response_custom_attributes == "seen=trace=1"


def test_wrong_arity_is_refused_at_load(code_dir: Path) -> None:
    write_code(code_dir, "def predict_fn(data):\n    return data\n")
    with pytest.raises(EndpointError, match=r"predict_fn takes 1 argument"):
        load_handlers(code_dir)


def test_local_imports_of_the_script_work(code_dir: Path, iris: IrisModel) -> None:
    write_code(code_dir, "def double(x):\n    return x * 2\n", name="helpers_for_test_xyz.py")
    variant = loaded(
        code_dir,
        "from helpers_for_test_xyz import double\n\n"
        "def predict_fn(data, model):\n    return double(data)\n",
        iris,
    )
    body, _ = variant.invoke(b"[1, 2]", codecs.JSON, codecs.JSON)
    assert json.loads(body) == [[2, 4]]


def test_two_scripts_of_the_same_name_do_not_collide(tmp_path: Path, iris: IrisModel) -> None:
    a = load_handlers(write_code(tmp_path / "a", "def predict_fn(data, model):\n    return 'a'\n"))
    b = load_handlers(write_code(tmp_path / "b", "def predict_fn(data, model):\n    return 'b'\n"))
    assert a.module is not b.module
    assert a.predict_fn(None, None) == "a" and b.predict_fn(None, None) == "b"


def test_missing_script(tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match="does not exist"):
        load_handlers(tmp_path, "nope.py")


def test_script_import_error_names_the_problem(code_dir: Path) -> None:
    write_code(code_dir, "import not_a_real_package_xyz\n")
    with pytest.raises(EndpointError, match="No module named 'not_a_real_package_xyz'") as info:
        load_handlers(code_dir)
    assert "requirements.txt" in info.value.headline


def test_model_fn_error_carries_the_message(code_dir: Path, tmp_path: Path) -> None:
    handlers = load_handlers(write_code(code_dir, MODEL_FN_RAISES))
    with pytest.raises(
        EndpointError,
        match=r"model_fn of inference.py raised RuntimeError: the weights are corrupt "
        r"\(inference.py, line 3\)",
    ):
        handlers.load_model(tmp_path)


def test_default_model_fn_without_a_model_file(code_dir: Path, tmp_path: Path) -> None:
    handlers = load_handlers(write_code(code_dir, NO_HANDLERS))
    with pytest.raises(EndpointError, match="defines no model_fn") as info:
        handlers.load_model(tmp_path)
    assert "define model_fn" in info.value.headline


def test_default_model_fn_reads_pickles(code_dir: Path, tmp_path: Path, iris: IrisModel) -> None:
    import pickle

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(iris.model))
    handlers = load_handlers(write_code(code_dir, NO_HANDLERS))
    model = handlers.load_model(tmp_path)
    assert np.array_equal(model.predict(iris.X), iris.model.predict(iris.X))


def test_output_fn_must_return_bytes_or_str(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(
        code_dir, "def output_fn(prediction, accept):\n    return {'no': 'bytes'}\n", iris
    )
    with pytest.raises(HandlerError, match="must return bytes, str"):
        variant.invoke(b"[[5.1, 3.5, 1.4, 0.2]]", codecs.JSON, codecs.JSON)


def test_unsupported_type_with_default_input_fn(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, NO_HANDLERS, iris)
    with pytest.raises(UnsupportedMediaTypeError):
        variant.invoke(b"hello", "text/plain", codecs.JSON)


def test_syntax_error_points_at_the_line(code_dir: Path) -> None:
    write_code(code_dir, "def model_fn(model_dir)\n    return 1\n")
    with pytest.raises(EndpointError, match=r"SyntaxError: .*\(inference.py, line 1\)"):
        load_handlers(code_dir)


def test_the_default_predict_fn_uses_the_compiled_model(code_dir: Path, iris: IrisModel) -> None:
    handlers = load_handlers(write_code(code_dir, NO_HANDLERS))
    model = handlers.load_model(iris.model_dir)
    LoadedVariant("AllTraffic", handlers, model)
    lean = compiler.lookup(model)
    assert lean is not None and lean.model is model
    assert compiler.register(model) is lean  # compiled once
    out = handlers.predict_fn(iris.X[:4], model)
    np.testing.assert_array_equal(out, iris.model.predict(iris.X[:4]))


@pytest.mark.parametrize("script", [FULL_HANDLERS, TRANSFORM_FN, CONTEXT_HANDLERS])
def test_users_handlers_get_the_model_with_compiled_methods(
    code_dir: Path, iris: IrisModel, script: str
) -> None:
    variant = loaded(code_dir, script, iris)
    methods = ("predict", "predict_proba", "predict_log_proba", "decision_function")
    assert variant.compiled == methods
    lean = compiler.lookup(variant.model)
    assert lean is not None and isinstance(variant.model, type(iris.model))
    assert all(vars(variant.model)[m] == getattr(lean, m) for m in methods)
    np.testing.assert_array_equal(variant.model.predict(iris.X), iris.model.predict(iris.X))
    np.testing.assert_allclose(
        variant.model.predict_proba(iris.X), iris.model.predict_proba(iris.X), rtol=0, atol=1e-12
    )


def test_the_default_predict_fn_binds_nothing(code_dir: Path, iris: IrisModel) -> None:
    variant = loaded(code_dir, NO_HANDLERS, iris)
    assert variant.compiled == ("predict",) and "predict" not in vars(variant.model)


def test_fastpath_off_compiles_nothing(
    code_dir: Path, iris: IrisModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    variant = loaded(code_dir, FULL_HANDLERS, iris)
    assert variant.compiled == () and compiler.lookup(variant.model) is None
    assert not {"predict", "predict_proba"} & vars(variant.model).keys()


def test_a_load_runs_without_the_cyclic_gc_and_what_it_loaded_is_frozen_after() -> None:
    frozen = gc.get_freeze_count()
    try:
        with gc_paused_while_loading():
            assert not gc.isenabled()
            loaded = [[n] for n in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(loaded)
    finally:
        gc.unfreeze()


def test_a_failed_load_freezes_nothing_and_a_paused_gc_stays_paused() -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(EndpointError), gc_paused_while_loading():
        raise EndpointError("model_fn failed")
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    gc.disable()
    try:
        with gc_paused_while_loading():
            pass
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
