"""SageMaker's ``ClarifyExplainerConfig`` read and checked, as a worker uses it.

Apart from serving/explanations.py (which runs the explainer, and imports the handlers and
shap's choices) so that checking a serving config — `ServingConfig.problems`, which every
endpoint backend imports — brings in none of that.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcicd.shapes import DEFAULT_MAX_RECORDS

ALWAYS = "`true`"
MAX_EXPRESSION = 64  # Clarify's limit on EnableExplanations


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
