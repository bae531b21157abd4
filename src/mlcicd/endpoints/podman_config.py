"""How a container endpoint serves, as its ``endpoint.json`` records it (``serving``): written
at deploy, read back by a restart, which has no deploy config — the inference code copied into
the endpoint's directory (a run's checkout may be pruned), the variant's environment, workers
and timeouts. The image id, model digest and port are the record's own keys.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from mlcicd.endpoints.base import EndpointConfig, ProductionVariant
from mlcicd.errors import EndpointError
from mlcicd.serving.model_check import ARCHIVE_NAME


def serving_record(variant: ProductionVariant, config: EndpointConfig) -> dict[str, Any]:
    """endpoint.json's ``serving``: what :func:`recorded` needs besides the record's keys."""
    return {
        "code_dir": str(variant.code_dir),
        "entry_point": variant.entry_point,
        "environment": dict(variant.environment),
        "workers": config.workers,
        "max_payload_bytes": config.max_payload_bytes,
        "startup_timeout": config.startup_timeout,
    }


def copy_code(config: EndpointConfig, dest: Path) -> Path:
    """A copy of the variant's inference code at ``dest`` (resolved)."""
    source = config.variants[0].code_dir
    if not source.is_dir():
        raise EndpointError(
            f"endpoint {config.endpoint_name}: code directory {source} does not exist"
        )
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".mlcicd")
    shutil.copytree(source, dest, ignore=ignore)
    return dest.resolve()


def remove_code(edir: Path, record: dict[str, Any], keep: Path) -> None:
    """The code copy of the config ``record`` served, unless it is ``keep``."""
    code = (record.get("serving") or {}).get("code_dir")
    if code and Path(code) != keep and Path(code).parent == (edir / "code").resolve():
        shutil.rmtree(code, ignore_errors=True)


def recorded(
    name: str, record: dict[str, Any], edir: Path
) -> tuple[ProductionVariant, EndpointConfig]:
    """The variant and config that endpoint.json says the endpoint serves."""
    serving = record.get("serving")
    if not isinstance(serving, dict) or not record.get("image_id") or not record.get("port"):
        raise EndpointError(
            f"endpoint {name}: its record ({edir / 'endpoint.json'}) does not say how it was "
            "served, so it cannot be restarted",
            hint="deploy it again (endpoints deployed before this version recorded less)",
        )
    sha = str(record["model_sha256"])
    variant = ProductionVariant(
        name=str(record.get("variant") or "AllTraffic"),
        model_data=edir / "models" / sha / ARCHIVE_NAME,
        model_sha256=sha,
        code_dir=Path(serving["code_dir"]),
        entry_point=str(serving["entry_point"]),
        python=Path(sys.executable),  # unused: the image serves with its own interpreter
        environment={str(k): str(v) for k, v in (serving.get("environment") or {}).items()},
    )
    config = EndpointConfig(
        name=str(record.get("config_name")),
        endpoint_name=name,
        variants=(variant,),
        port=int(record["port"]),
        workers=int(serving["workers"]),
        startup_timeout=float(serving["startup_timeout"]),
        max_payload_bytes=int(serving["max_payload_bytes"]),
    )
    return variant, config
