"""The daemon tests' harness (a real `mlcicd up`), shared with the HTTP operations' tests."""

from __future__ import annotations

from tests.daemon.conftest import services

__all__ = ["services"]
