"""The traffic split inside a worker: one endpoint config's production variants by weight.

SageMaker splits an endpoint's traffic between its production variants by their weights;
here each worker does, with no proxy: a :class:`Fleet` draws a variant per request.
``set_weights`` changes the weights in place (``mlcicd endpoints set-weights``), in one
assignment, so the event loop never sees them half-changed. During a canary or linear update
a worker holds two fleets (:class:`mlcicd.serving.app.InferenceApp`), the serving config's
and the new one's.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Mapping, Sequence

from mlcicd.serving import metrics as metrics_files
from mlcicd.serving.handlers import LoadedVariant


class Fleet:
    """One endpoint config's production variants, their weights and their metrics."""

    __slots__ = ("by_name", "config_name", "cumulative", "header", "metrics", "single", "variants")

    def __init__(
        self,
        config_name: str,
        variants: Sequence[LoadedVariant],
        metrics: metrics_files.WorkerMetrics,
    ) -> None:
        if not variants:
            raise ValueError("an InferenceApp needs at least one loaded variant")
        self.config_name = config_name
        self.variants = tuple(variants)
        self.by_name = {v.name: v for v in self.variants}
        self.header = {v.name: v.name.encode() for v in self.variants}
        self.metrics = {v.name: metrics.variant(config_name, v.name) for v in self.variants}
        self.cumulative: list[float] = []
        self.single: LoadedVariant | None = None
        self.set_weights({})

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """New traffic weights (variants not named keep theirs); one assignment, no lock."""
        for variant in self.variants:
            weight = weights.get(variant.name)
            if isinstance(weight, int | float) and weight >= 0:
                variant.weight = float(weight)
        total = sum(v.weight for v in self.variants)
        if total <= 0:  # all zero: SageMaker refuses it; serve evenly rather than not at all
            self.cumulative = [(i + 1) / len(self.variants) for i in range(len(self.variants))]
        else:
            self.cumulative = list(itertools.accumulate(v.weight / total for v in self.variants))
        live = [v for v in self.variants if v.weight > 0]
        self.single = live[0] if len(live) == 1 else None

    def pick(self) -> LoadedVariant:
        """A variant drawn by weight (SageMaker's traffic split between production variants)."""
        single = self.single
        if single is not None:
            return single
        index = bisect.bisect_right(self.cumulative, random.random())
        return self.variants[min(index, len(self.variants) - 1)]
