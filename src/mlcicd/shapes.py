"""SageMaker's data shapes that a backend family and the AWS request builders both need.

``endpoints/`` and ``training/`` (the backends) and ``aws/`` (SageMaker's API as plain data)
sit in different layers; what each reads of the other is here, below both, so neither
imports the other: how an update shifts traffic (:class:`DeploymentPolicy`, SageMaker's
``DeploymentConfig``), what it captures (:class:`DataCapture`, its ``DataCaptureConfig``),
an endpoint's metrics as every backend reports them (:class:`EndpointMetrics`), and how
hyperparameters travel (:func:`encode_hyperparameters`: the CreateTrainingJob API carries
strings; :func:`decode_hyperparameters` reads them back), and an endpoint's online explainer
(:func:`clarify_explainer_config`, built by ``mlcicd run``'s SageMaker backend and the
stack's deploy Lambda alike; the Lambda has no numpy), and SageMaker's rule for a
resource's name (:data:`NAME_RE`: the config's checks and every backend's). Plain data and
pure functions: nothing here calls anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from mlcicd.errors import ExplainError, TrainingError

# SageMaker's resource-name pattern (endpoints and their configs, jobs, model package groups):
# 1-63 letters, digits and hyphens, starting and ending with a letter or digit. It also keeps
# a name safe as a path part and a container's name. ``\Z``, not ``$``: "iris\n" is no name.
NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
NAME_RULE = "1-63 letters, digits and hyphens, starting and ending with a letter or digit"


@dataclass(frozen=True)
class DeploymentPolicy:
    """How an update shifts traffic and when it rolls back (SageMaker's ``DeploymentConfig``).

    ``strategy`` is ``all_at_once``, ``canary`` (``canary_percent`` first) or ``linear``
    (``linear_step_percent`` per step); each step waits ``wait_seconds`` while the alarms
    watch the new config: a 5XX rate above ``max_5xx_rate`` (0..1) or a p99 ModelLatency
    above ``max_p99_latency_ms`` rolls the update back.
    """

    strategy: str = "all_at_once"
    canary_percent: float = 10.0
    linear_step_percent: float = 25.0
    wait_seconds: float = 0.0
    max_5xx_rate: float | None = None
    max_p99_latency_ms: float | None = None
    min_invocations: int = 1


@dataclass(frozen=True)
class DataCapture:
    """SageMaker's ``DataCaptureConfig``: a sampled share of requests and/or responses."""

    sampling_percentage: float = 100.0
    capture_input: bool = True
    capture_output: bool = True
    # A directory, an s3:// URI (SageMaker's DestinationS3Uri), or None: the backend's default
    # place.
    destination: Path | str | None = None


class EndpointMetrics(TypedDict):
    """An endpoint's metrics over a window, the same from every backend (what
    ``mlcicd endpoints metrics`` prints, and its ``--json``).

    ``variants`` maps each variant to SageMaker's names: ``Invocations``,
    ``Invocation4XXErrors``, ``Invocation5XXErrors`` (counts over the window), ``5XXRate``,
    and ``ModelLatencyp50_ms`` … ``OverheadLatencyp99_ms`` (milliseconds; None without
    requests) — :func:`mlcicd.serving.metrics.variant_summary` makes each one.
    """

    endpoint: str
    window_seconds: float | None  # as asked; None: since the endpoint started
    variants: dict[str, dict[str, Any]]
    counters: dict[str, int]  # the backend's own, e.g. CaptureDropped (none on SageMaker)
    notes: list[str]  # what a reader should know about these figures (SageMaker's delay)


def encode_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, str]:
    """What SageMaker writes to hyperparameters.json: every value JSON-encoded into a string.

    (The SageMaker Python SDK's ``_json_encode_hyperparameters``; the CreateTrainingJob API
    only carries strings, so ``0.1`` travels as ``"0.1"`` and ``"adam"`` as ``"\\"adam\\""``.)
    """
    encoded: dict[str, str] = {}
    for key, value in hyperparameters.items():
        try:
            encoded[str(key)] = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TrainingError(
                f"hyperparameter {key!r}: {type(value).__name__} value cannot be encoded as JSON",
                hint="use strings, numbers, booleans, lists or dicts",
            ) from exc
    return encoded


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What the toolkit reads back: each value JSON-decoded, or kept as is if it is not JSON."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


# --- online explanations (docs/explain.md, "Online") -----------------------------------------

DEFAULT_MAX_RECORDS = 100  # records per explained request, unless MaxRecordCount says
ENABLE_BY_DEFAULT = "`false`"  # EnableExplanations: a record is explained when asked


def baseline_csv(rows: Any) -> str:
    """Baseline rows as ``ShapBaseline``'s CSV text (repr of each float: no digits lost)."""
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def clarify_explainer_config(report: Mapping[str, Any] | None, model: str) -> dict[str, Any]:
    """``ClarifyExplainerConfig`` for the model whose register-time report is ``report``
    (``model``: its ARN, for the errors); ``ExplainError`` when the report cannot give one.

    The report's baseline (the k-means summary it explained against, at most 10 rows) becomes
    ``ShapConfig.ShapBaselineConfig.ShapBaseline``, its features
    ``InferenceConfig.FeatureHeaders`` and its outputs (the classes, for a classifier)
    ``LabelHeaders``: an endpoint explains a request against the same baseline the version's
    importance was computed on. ``EnableExplanations`` is ``false``: a record is explained
    when its request asks (``X-Amzn-SageMaker-Enable-Explanations``), never by default."""
    if report is None:
        raise ExplainError(
            f"explain.online: model {model} was not explained at register, so its endpoint "
            "has no baseline to explain against",
            hint="run the pipeline with explain: set (the register stage explains the model)",
        )
    if "error" in report:
        raise ExplainError(
            f"explain.online: model {model} could not be explained at register: {report['error']}",
            hint="fix the cause (`mlcicd explain` says it), or set explain.online: false",
        )
    baseline = report.get("baseline")
    if not baseline:
        raise ExplainError(
            f"explain.online: the report of model {model} predates online explanations "
            "(it keeps no baseline)",
            hint="run the pipeline again: the register stage explains the model anew",
        )
    return {
        "EnableExplanations": ENABLE_BY_DEFAULT,
        "ShapConfig": {
            "ShapBaselineConfig": {"MimeType": "text/csv", "ShapBaseline": baseline_csv(baseline)},
        },
        "InferenceConfig": {
            "FeatureHeaders": list(report["features"]),
            "LabelHeaders": list(report["expected_value"]),
            "MaxRecordCount": DEFAULT_MAX_RECORDS,
        },
    }
