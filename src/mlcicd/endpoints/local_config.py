"""The serving config of a local endpoint, built from an :class:`EndpointConfig`.

:func:`serving_config` readies what the config names inside the endpoint's directory (each
model.tar.gz digest-checked and extracted once under ``models/<sha256>/``, marked
complete by :func:`~mlcicd.archive.ensure_extracted`, the inference code
copied under ``code/<config_name>/``) and returns the
:class:`~mlcicd.serving.config.ServingConfig` that points at them, as plain data:
:mod:`mlcicd.endpoints.local` writes it as config.json and starts or signals the supervisor on
it. :func:`prune` forgets the models and code that neither the new nor the previous config uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from mlcicd.archive import ensure_extracted
from mlcicd.endpoints.base import EndpointConfig
from mlcicd.errors import EndpointError
from mlcicd.serving.config import (
    AutoscalingSpec,
    CaptureSpec,
    DeploymentSpec,
    ServingConfig,
    VariantSpec,
)

CAPTURE_DIR = "data-capture"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def serving_config(edir: Path, config: EndpointConfig, *, port: int, in_use: bool) -> ServingConfig:
    """Extract the models, copy the code: the serving config with paths ready to use.

    ``port`` is the one config.json states; ``in_use``: the endpoint serves ``config.name``
    now, so its code may not change under it.
    """
    if not config.variants:
        raise EndpointError(f"endpoint config {config.name} has no production variant")
    everyone = [*config.variants, *([config.shadow] if config.shadow else [])]
    distinct_code = {v.code_dir.resolve() for v in everyone}
    specs = []
    for variant in everyone:
        if not SHA256_RE.match(variant.model_sha256):
            raise EndpointError(
                f"variant {variant.name}: {variant.model_sha256!r} is not a sha256 digest"
            )
        # A tree without the digest marker (a crash cut its extraction short) is extracted again.
        model_dir = ensure_extracted(
            variant.model_data,
            edir / "models" / variant.model_sha256,
            expected_sha256=variant.model_sha256,
        )
        code_dir = edir / "code" / config.name
        if len(distinct_code) > 1:
            code_dir = code_dir / variant.name
        _copy_code(variant.code_dir, code_dir, config.name, in_use=in_use)
        specs.append(
            VariantSpec(
                name=variant.name,
                model_dir=str(model_dir.resolve()),
                code_dir=str(code_dir.resolve()),
                entry_point=variant.entry_point,
                model_sha256=variant.model_sha256,
                python=str(variant.python),
                weight=variant.weight,
                environment=dict(variant.environment),
            )
        )
    shadow = specs.pop() if config.shadow else None
    capture = None
    if config.data_capture is not None:
        dc = config.data_capture
        destination = dc.destination or edir / CAPTURE_DIR
        if not str(destination).startswith("s3://"):  # an S3 URI goes to the workers as is
            destination = Path(destination).resolve()
        capture = CaptureSpec(
            destination=str(destination),
            sampling_percentage=dc.sampling_percentage,
            capture_input=dc.capture_input,
            capture_output=dc.capture_output,
        )
    policy = config.deployment
    deployment = DeploymentSpec(
        strategy=policy.strategy,
        canary_percent=policy.canary_percent,
        linear_step_percent=policy.linear_step_percent,
        wait_seconds=policy.wait_seconds,
        max_5xx_rate=policy.max_5xx_rate,
        max_p99_latency_ms=policy.max_p99_latency_ms,
        min_invocations=policy.min_invocations,
    )
    scaling = config.autoscaling
    autoscaling = (
        AutoscalingSpec(
            min_instances=scaling.min_instances,
            max_instances=scaling.max_instances,
            target_invocations_per_instance=scaling.target_invocations_per_instance,
            scale_in_cooldown=scaling.scale_in_cooldown,
            scale_out_cooldown=scaling.scale_out_cooldown,
        )
        if scaling is not None
        else None
    )
    try:
        return ServingConfig(
            name=config.name,
            variants=tuple(specs),
            endpoint_name=config.endpoint_name,
            port=port,
            workers=config.workers,
            startup_timeout=config.startup_timeout,
            drain_timeout=config.drain_timeout,
            max_payload_bytes=config.max_payload_bytes,
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            model_timeout=config.model_timeout,
            shadow=shadow,
            capture=capture,
            deployment=deployment,
            explainer=config.explainer,
            autoscaling=autoscaling,
        )
    except ValueError as exc:
        raise EndpointError(f"endpoint config {config.name}: {exc}") from exc


def prune(edir: Path, serving: ServingConfig, previous: bytes | None) -> None:
    """Forget models and code that neither the new nor the previous config uses."""
    keep: set[Path] = set()
    configs = [serving.to_dict()]
    if previous:
        with contextlib.suppress(ValueError):
            configs.append(json.loads(previous))
    for data in configs:
        for variant in data.get("variants", []):
            for key in ("model_dir", "code_dir"):
                path = Path(variant.get(key, ""))
                keep.update({path, path.parent})
    for kind in ("models", "code"):
        base = edir / kind
        if not base.is_dir():
            continue
        for child in base.iterdir():
            if child.resolve() not in keep and not child.name.startswith("."):
                shutil.rmtree(child, ignore_errors=True)


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def _copy_code(source: Path, dest: Path, config_name: str, *, in_use: bool) -> None:
    """Copy the inference code, so later edits to the project do not reach a running endpoint."""
    if not source.is_dir():
        raise EndpointError(f"code directory {source} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".mlcicd")
    try:
        shutil.copytree(source, staging, ignore=ignore)
        if dest.is_dir():
            if _tree_digest(dest) == _tree_digest(staging):
                return
            if in_use:
                raise EndpointError(
                    f"endpoint config {config_name} is being served with different code",
                    hint="deploy the changed code under a new endpoint config name",
                )
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
