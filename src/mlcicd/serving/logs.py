"""One log line per event, on stderr: the supervisor points it at ``logs/endpoint.log``
locally, and a SageMaker container's stderr goes to CloudWatch."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s.%(msecs)03d {role}[%(process)d] %(levelname)s %(name)s: %(message)s"


def configure_logging(role: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT.format(role=role), "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
