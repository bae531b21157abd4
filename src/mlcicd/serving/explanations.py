"""Online explanations in SageMaker Clarify's contract (docs/explain.md, "Online").

An endpoint config with an explainer carries SageMaker's ``ClarifyExplainerConfig`` as is
(``EnableExplanations``, ``ShapConfig.ShapBaselineConfig``, ``InferenceConfig``'s
``FeatureHeaders``/``LabelHeaders``/``MaxRecordCount``/``MaxPayloadInMB``); each worker builds one
:class:`OnlineExplainer` per variant when it loads the model — the explainer chosen as at
register (:mod:`mlcicd.serving.explainers`: exact tree or linear where the model allows,
KernelSHAP over ``predict_fn`` otherwise), never per request.

A request carrying ``X-Amzn-SageMaker-Enable-Explanations`` (boto3's ``invoke_endpoint(
EnableExplanations=…)``), a JMESPath expression evaluated on each record of the model's
answer, gets Clarify's response::

    {"version": "1.0",
     "predictions": {"content_type": <the model's>, "data": <the model's answer, as text>},
     "label_headers": [...],
     "explanations": {"kernel_shap": [            # one per record; null: not explained
         [{"feature_header": "petal_length",      # one per feature
           "attributions": [{"attribution": [<one per label>]}]}, ...], ...]}}

``explanations`` is ``{}`` when no record is explained. The key is ``kernel_shap`` whatever
explainer computed the values, as Clarify names it; the ``x-mlcicd-explainer`` response
header says which one did (``tree``, ``linear`` or ``kernel``) and on what output.

A request without the header never reaches this module: the app's hot path is unchanged.
What cannot be explained is a 400 naming what is missing: a model whose predict_fn answers
labels only, a text feature, more records than ``MaxRecordCount``, a body over
``MaxPayloadInMB``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlcicd.errors import ExplainError
from mlcicd.serving import codecs, explainers
from mlcicd.serving.codecs import BadRequestError
from mlcicd.serving.handlers import InvocationContext, LoadedVariant, describe_exception

ENABLE_EXPLANATIONS = b"x-amzn-sagemaker-enable-explanations"
EXPLAINER_HEADER = b"x-mlcicd-explainer"
VERSION = "1.0"
ALWAYS = "`true`"
DEFAULT_MAX_RECORDS = 100  # records per explained request, unless MaxRecordCount says
MAX_EXPRESSION = 64  # Clarify's limit on EnableExplanations
_CACHE_SIZE = 64

log = logging.getLogger("mlcicd.serving.explanations")


@dataclass(frozen=True)
class ExplainerSettings:
    """A ``ClarifyExplainerConfig`` as a worker uses it."""

    enable_explanations: str
    baseline: np.ndarray  # (rows, features)
    feature_headers: tuple[str, ...] | None
    label_headers: tuple[str, ...] | None
    max_record_count: int
    max_payload_bytes: int | None  # InferenceConfig.MaxPayloadInMB, for explained requests
    number_of_samples: int | None
    seed: int | None

    @classmethod
    def from_clarify(cls, config: Mapping[str, Any]) -> ExplainerSettings:
        """Read SageMaker's ``ClarifyExplainerConfig``; ``ValueError`` says what is wrong."""
        shap = _mapping(config, "ShapConfig", required=True)
        baseline_config = _mapping(shap, "ShapBaselineConfig", where="ShapConfig", required=True)
        text = baseline_config.get("ShapBaseline")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(
                "ShapConfig.ShapBaselineConfig.ShapBaseline: an inline CSV baseline is needed "
                "(a local endpoint does not read ShapBaselineUri)"
            )
        baseline = _csv_rows(text)
        inference = _mapping(config, "InferenceConfig")
        features = _strings(inference, "FeatureHeaders")
        if features is not None and len(features) != baseline.shape[1]:
            raise ValueError(
                f"InferenceConfig.FeatureHeaders names {len(features)} features, the baseline "
                f"has {baseline.shape[1]} columns"
            )
        records = inference.get("MaxRecordCount", DEFAULT_MAX_RECORDS)
        if not isinstance(records, int) or isinstance(records, bool) or records < 1:
            raise ValueError(f"InferenceConfig.MaxRecordCount: a number >= 1, got {records!r}")
        megabytes = inference.get("MaxPayloadInMB")
        if megabytes is not None and (
            not isinstance(megabytes, int) or isinstance(megabytes, bool) or megabytes < 1
        ):
            raise ValueError(f"InferenceConfig.MaxPayloadInMB: a number >= 1, got {megabytes!r}")
        expression = config.get("EnableExplanations", ALWAYS)
        if not isinstance(expression, str) or not 1 <= len(expression) <= MAX_EXPRESSION:
            raise ValueError(
                f"EnableExplanations: a JMESPath expression of 1 to {MAX_EXPRESSION} "
                f"characters, got {expression!r}"
            )
        samples, seed = shap.get("NumberOfSamples"), shap.get("Seed")
        for key, value in (("NumberOfSamples", samples), ("Seed", seed)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"ShapConfig.{key}: a whole number, got {value!r}")
        return cls(
            enable_explanations=expression,
            baseline=baseline,
            feature_headers=features,
            label_headers=_strings(inference, "LabelHeaders"),
            max_record_count=records,
            max_payload_bytes=megabytes * 1024 * 1024 if megabytes is not None else None,
            number_of_samples=samples,
            seed=seed,
        )


def clarify_problems(config: Mapping[str, Any]) -> list[str]:
    """What is wrong with a ``ClarifyExplainerConfig`` (the serving config's check)."""
    try:
        ExplainerSettings.from_clarify(config)
    except ValueError as exc:
        return [f"explainer: {exc}"]
    return []


def _mapping(
    data: Mapping[str, Any], key: str, *, where: str = "", required: bool = False
) -> Mapping[str, Any]:
    value = data.get(key)
    name = f"{where}.{key}" if where else key
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}: an object is needed, got {type(value).__name__}")
    return value


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"InferenceConfig.{key}: a list of strings, got {value!r}")
    return tuple(value)


def _csv_rows(text: str) -> np.ndarray:
    rows = [row for row in csv.reader(io.StringIO(text.strip())) if row]
    try:
        baseline = np.asarray([[float(cell) for cell in row] for row in rows], dtype=float)
    except ValueError as exc:
        raise ValueError(f"ShapBaseline: rows of numbers are needed ({exc})") from None
    if baseline.ndim != 2 or not baseline.size:
        raise ValueError("ShapBaseline: rows of equal length are needed")
    return baseline


def baseline_csv(rows: Any) -> str:
    """Baseline rows as ``ShapBaseline``'s CSV text (repr of each float: no digits lost)."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


class OnlineExplainer:
    """One variant's explainer, built when the worker loads the model.

    ``reason`` is set, and every explained request refused with it, when the model cannot be
    explained (its predict_fn answers labels only, a transform_fn, shap missing, attributions
    that do not add up on the baseline): the worker serves predictions all the same.
    """

    def __init__(
        self,
        variant: LoadedVariant,
        settings: ExplainerSettings,
        *,
        prediction_key: str = "predictions",
    ) -> None:
        self.variant = variant
        self.settings = settings
        self.reason: str | None = None
        self.choice: explainers.Choice | None = None
        self._explainer: Any = None
        self._expressions: dict[str, Any] = {}
        self.header = b""
        try:
            self._build(prediction_key)
        except ExplainError as exc:
            self.reason = exc.headline
        except ImportError as exc:
            self.reason = f"shap cannot be imported in the model's environment ({exc})"
        except Exception as exc:  # the user's predict_fn, probed on the baseline
            self.reason = f"the explainer could not be built: {describe_exception(exc)}"
        if self.reason is not None:
            log.warning("variant %s cannot be explained: %s", variant.name, self.reason)

    def _build(self, prediction_key: str) -> None:
        variant, baseline = self.variant, self.settings.baseline
        if variant.handlers.transform_fn is not None:
            raise ExplainError(
                "the inference script defines transform_fn: the explainer needs the "
                "input_fn/predict_fn/output_fn chain to call the model on its own rows"
            )
        width = variant.n_features
        if width is not None and width != baseline.shape[1]:
            raise ExplainError(
                f"the baseline has {baseline.shape[1]} features, the model {width}",
            )
        try:
            choice = explainers.choose(variant.model, None, "value")
        except ExplainError:  # none shap reads exactly: the predict_fn's numbers, if any
            fallback, output = explainers.numeric_predict(
                variant.predict, baseline[:2], prediction_key
            )
            choice = explainers.choose(variant.model, fallback, output)
        explainer = explainers.build(choice, variant.model, baseline)
        # Once, at load: the attributions must add up on (a few of) the baseline's own rows.
        probe = baseline[:2]
        values, expected = explainers.shap_values(choice, explainer, probe, **self._kernel())
        error = explainers.accuracy_error(choice, probe, values, expected)
        if not error <= choice.tolerance:
            raise ExplainError(
                f"the {choice.explainer} explainer's attributions do not add up to the "
                f"model's {choice.output} on the baseline: off by {error:.3g}"
            )
        self.choice, self._explainer = choice, explainer
        names = explainers.output_names(choice, values.shape[2])
        self.labels = list(self.settings.label_headers or names)
        self.header = f"{choice.explainer}; output={choice.output}".encode()

    def _kernel(self) -> dict[str, Any]:
        samples = self.settings.number_of_samples
        return {"nsamples": samples} if samples is not None else {}

    def explain(
        self,
        body: bytes,
        content_type: str,
        accept: str,
        expression: str,
        context: InvocationContext | None = None,
    ) -> bytes:
        """One explained request: the model's answer and the records' attributions, as
        Clarify's JSON."""
        if self.reason is not None:
            raise BadRequestError(
                f"variant {self.variant.name} cannot explain its predictions: {self.reason}"
            )
        choice = self.choice
        assert choice is not None
        limit = self.settings.max_payload_bytes
        if limit is not None and len(body) > limit:
            raise BadRequestError(
                f"the body of an explained request is {len(body)} bytes, over the explainer's "
                f"limit of {limit} (InferenceConfig.MaxPayloadInMB): split the request"
            )
        rows = self._rows(self.variant.read_input(body, content_type, context))
        prediction = self.variant.predict(rows, context)
        out, out_type = self.variant.write_output(prediction, accept, context)
        selected = self._selected(expression, out, out_type, len(rows))
        explanations: dict[str, Any] = {}
        if selected:
            if self.settings.seed is not None and choice.explainer == "kernel":
                np.random.seed(self.settings.seed)
            values, _ = explainers.shap_values(
                choice, self._explainer, rows[selected], **self._kernel()
            )
            if values.shape[1] == 0 or values.shape[2] == 0:  # never an empty explanation
                raise BadRequestError("the explainer produced no attribution for these records")
            by_record: list[Any] = [None] * len(rows)
            for slot, index in enumerate(selected):
                by_record[index] = self._record(values[slot])
            explanations = {"kernel_shap": by_record}
        try:
            data = out.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestError(
                f"the model answered {out_type}, which is not text: ask for text/csv, "
                "application/json or application/jsonlines with Accept"
            ) from None
        answer = {
            "version": VERSION,
            "predictions": {"content_type": out_type, "data": data},
            "label_headers": self.labels,
            "explanations": explanations,
        }
        return orjson.dumps(answer)

    def _rows(self, data: Any) -> np.ndarray:
        """The decoded request as a table of numbers, or a 400 naming the text feature."""
        rows = np.asarray(data)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise BadRequestError(f"explanations need rows of features, got shape {rows.shape}")
        features = self.settings.feature_headers
        width = self.settings.baseline.shape[1]
        if rows.shape[1] != width:
            raise BadRequestError(
                f"each record must have {width} features"
                + (f" ({', '.join(features)})" if features else "")
                + f" to be explained, got {rows.shape[1]}"
            )
        if rows.dtype.kind not in "biuf":
            for column in range(rows.shape[1]):
                for cell in rows[:, column]:
                    if not _is_number(cell):
                        name = features[column] if features else f"column {column + 1}"
                        raise BadRequestError(
                            f"feature {name} holds text ({str(cell)!r}): SHAP explains numeric "
                            "features only"
                        )
            rows = rows.astype(float)
        limit = self.settings.max_record_count
        if len(rows) > limit:
            raise BadRequestError(
                f"{len(rows)} records to explain; an explained request takes at most {limit} "
                "(InferenceConfig.MaxRecordCount): split the request"
            )
        return np.asarray(rows, dtype=float)

    def _selected(self, expression: str, out: bytes, out_type: str, count: int) -> list[int]:
        """The records whose answer the ``EnableExplanations`` expression holds true for."""
        text = expression.strip()
        if text == ALWAYS:
            return list(range(count))
        compiled = self._compiled(text)
        records = _records(out, out_type, count)
        chosen = []
        for index, record in enumerate(records):
            try:
                result = compiled.search(record)
            except Exception as exc:
                raise BadRequestError(
                    f"EnableExplanations {text!r} failed on record {index + 1} "
                    f"({json.dumps(record)[:80]}): {exc}"
                ) from exc
            if not isinstance(result, bool):
                raise BadRequestError(
                    f"EnableExplanations {text!r} gave {json.dumps(result)[:40]} on record "
                    f"{index + 1}, not true or false: write a boolean expression, e.g. "
                    "[0] > `0.5`"
                )
            if result:
                chosen.append(index)
        return chosen

    def _compiled(self, text: str) -> Any:
        compiled = self._expressions.get(text)
        if compiled is None:
            if len(text) > MAX_EXPRESSION:
                raise BadRequestError(
                    f"EnableExplanations is {len(text)} characters, longer than {MAX_EXPRESSION}"
                )
            import jmespath
            from jmespath.exceptions import JMESPathError

            try:
                compiled = jmespath.compile(text)
            except JMESPathError as exc:
                raise BadRequestError(
                    f"EnableExplanations {text!r} is not a JMESPath expression: {exc}"
                ) from exc
            if len(self._expressions) >= _CACHE_SIZE:  # client-controlled: keep it bounded
                self._expressions.clear()
            self._expressions[text] = compiled
        return compiled

    def _record(self, values: np.ndarray) -> list[dict[str, Any]]:
        """One record's attributions: per feature, one attribution per label."""
        features = self.settings.feature_headers
        out = []
        for index, per_label in enumerate(values):
            entry: dict[str, Any] = {"attributions": [{"attribution": per_label.tolist()}]}
            if features is not None:
                entry = {"feature_header": features[index], **entry}
            out.append(entry)
        return out


def _is_number(cell: Any) -> bool:
    try:
        float(cell)
    except (TypeError, ValueError):
        return False
    return True


def _records(out: bytes, out_type: str, count: int) -> list[Any]:
    """The model's answer per record, as Clarify reads it for ``EnableExplanations``: a CSV
    line as an array, a JSON Lines line as its value; a JSON list by element, a JSON object of
    per-record lists (``{"predictions": [...]}``) as one object per record."""
    try:
        records = _parsed(out, out_type, count)
    except ValueError as exc:
        raise BadRequestError(
            f"the model's {out_type} answer could not be read per record ({exc}): "
            "EnableExplanations cannot be evaluated on it (use `true`)"
        ) from exc
    if len(records) != count:
        raise BadRequestError(
            f"the model answered {len(records)} records for {count}: EnableExplanations "
            "cannot tell which to explain (use `true`)"
        )
    return records


def _parsed(out: bytes, out_type: str, count: int) -> list[Any]:
    media = codecs.media_type(out_type)
    text = out.decode("utf-8", errors="replace")
    records: list[Any]
    if media == codecs.CSV:
        records = [[_cell(c) for c in row] for row in csv.reader(io.StringIO(text.strip())) if row]
    elif media == codecs.JSONLINES:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif media == codecs.JSON:
        answer = json.loads(text)
        if isinstance(answer, list):
            records = answer
        elif isinstance(answer, dict) and all(
            isinstance(v, list) and len(v) == count for v in answer.values()
        ):
            records = [{k: v[i] for k, v in answer.items()} for i in range(count)]
        else:
            records = [answer] if count == 1 else []
    else:
        raise BadRequestError(
            f"EnableExplanations is evaluated on the model's answer per record, which "
            f"{out_type} does not give: ask for text/csv or application/jsonlines with Accept"
        )
    return records


def _cell(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
