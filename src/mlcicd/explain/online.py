"""The endpoint config's explainer: SageMaker's ``ClarifyExplainerConfig`` built from the
model's register-time report (docs/explain.md, "Online").

The builder is :func:`mlcicd.shapes.clarify_explainer_config`, numpy-free and below the
backends, so that the stack's deploy Lambda builds the same config from the same report.
"""

from __future__ import annotations

from mlcicd.shapes import ENABLE_BY_DEFAULT, clarify_explainer_config

__all__ = ["ENABLE_BY_DEFAULT", "clarify_explainer_config"]
