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
from typing import Any

import numpy as np
import orjson

from mlcicd.errors import ExplainError
from mlcicd.serving import codecs, explainers
from mlcicd.serving.clarify import ALWAYS, MAX_EXPRESSION, ExplainerSettings
from mlcicd.serving.codecs import BadRequestError
from mlcicd.serving.handlers import InvocationContext, LoadedVariant, describe_exception

ENABLE_EXPLANATIONS = b"x-amzn-sagemaker-enable-explanations"
EXPLAINER_HEADER = b"x-mlcicd-explainer"
VERSION = "1.0"
_CACHE_SIZE = 64

log = logging.getLogger("mlcicd.serving.explanations")


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
