"""Shared by the monitor tests: a project with the iris data, registered models, recorded
endpoints, and capture records written as the capture writers write them."""

from __future__ import annotations

import base64
import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlcicd.monitor.baseline import compute_baseline, store_baseline
from mlcicd.project import Project
from mlcicd.state import EndpointConfigRecord, EndpointRecord, ModelBaseline, ModelPackage
from mlcicd.store import LocalArtifactStore
from tests.conftest import IRIS

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CONFIG = """pipeline: iris
train:
  channels: {training: data}
monitor: {label: species, drift_threshold: 0.1}
deploy: {endpoint_name: iris}
"""


def iris_rows() -> list[list[float]]:
    """The iris example's training rows, label left out."""
    lines = (IRIS / "data" / "iris.csv").read_text().splitlines()[1:]
    return [[float(v) for v in line.split(",")[:4]] for line in lines if line.strip()]


def make_project(root: Path, *, store: str | None = None, config: str = CONFIG) -> Project:
    """A project directory (no git needed) holding mlcicd.yaml and the iris data."""
    root.mkdir(parents=True, exist_ok=True)
    text = config + (f"store: {{uri: {store!r}}}\n" if store else "")
    (root / "mlcicd.yaml").write_text(text)
    shutil.copytree(IRIS / "data", root / "data")
    return Project(root)


def register(project: Project, sha: str, *, job: str = "iris-job-1") -> ModelPackage:
    return project.state.register_model_package(
        group_name=project.config.pipeline,
        status="Approved",
        model_uri=f"file:///models/{sha}/model.tar.gz",
        model_sha256=sha,
        metrics={"accuracy": 0.97},
        training_job=job,
        build_digest="b" * 64,
        commit_sha="c" * 40,
        run_id=None,
        lineage={"training_job": {"data_digest": "d" * 64}},
    )


def baseline(project: Project, package: ModelPackage) -> ModelBaseline:
    """The package's baseline from the project's own data/ directory."""
    return store_baseline(project, package, compute_baseline(project.config, project.root))


def record_endpoint(
    project: Project,
    name: str,
    config_name: str,
    sha: str,
    *,
    version: int = 1,
    spec: dict[str, Any] | None = None,
    backend: str = "local",
) -> None:
    """What the deploy stage records when endpoint ``name`` starts serving ``config_name``."""
    now = time.time()
    state = project.state
    state.record_endpoint_config(
        EndpointConfigRecord(
            name=config_name,
            endpoint_name=name,
            model_group=project.config.pipeline,
            model_version=version,
            model_sha256=sha,
            run_id=None,
            reason="deploy",
            spec=spec or {"model": sha},
            created_at=now,
        )
    )
    previous = state.get_endpoint(name)
    state.upsert_endpoint(
        EndpointRecord(
            name=name,
            backend=backend,
            status="InService",
            url=None,
            port=None,
            pid=None,
            config_name=config_name,
            model_group=project.config.pipeline,
            model_version=version,
            model_sha256=sha,
            failure_reason=None,
            created_at=previous.created_at if previous else now,
            updated_at=now,
        )
    )


def write_serving_config(project: Project, name: str, capture: dict[str, Any] | None) -> None:
    """The part of a local endpoint's config.json that `monitor check` reads."""
    edir = project.state_dir / "endpoints" / name
    edir.mkdir(parents=True, exist_ok=True)
    (edir / "config.json").write_text(json.dumps({"name": name, "capture": capture}))


def capture_line(
    rows: Any,
    *,
    variant: str = "AllTraffic",
    at: float | None = None,
    content_type: str = "text/csv",
    extra: dict[str, Any] | None = None,
) -> bytes:
    """One capture record, shaped as mlcicd.serving.capture writes it."""
    if content_type == "text/csv":
        data, encoding = "".join(",".join(map(str, row)) + "\n" for row in rows), "CSV"
    elif content_type == "application/json":
        data, encoding = json.dumps(rows), "JSON"
    else:
        data, encoding = base64.b64encode(rows).decode(), "BASE64"
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    metadata = {
        "eventId": "e",
        "inferenceTime": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "variant": variant,
        **(extra or {}),
    }
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": data,
                "encoding": encoding,
            }
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }
    return json.dumps(record).encode() + b"\n"


def capture_key(
    endpoint: str, variant: str = "AllTraffic", at: float | None = None, name: str = "00-00-000-w1"
) -> str:
    """Where a capture file of that hour goes, under the destination (SageMaker's layout)."""
    stamp = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return f"{endpoint}/{variant}/{stamp:%Y/%m/%d/%H}/{name}.jsonl"


SHA1, SHA2 = "1" * 64, "2" * 64


def shifted(rows: list[list[float]]) -> list[list[float]]:
    """Petal length and width moved up by five of their standard deviations."""
    return [[a, b, c + 5 * 1.76, d + 5 * 0.76] for a, b, c, d in rows]


def capturing_project(
    tmp_path: Path, *, with_baseline: bool = True, config: str = CONFIG
) -> tuple[Project, LocalArtifactStore]:
    """Model 1 (SHA1) serving on endpoint iris, which captures to ``tmp_path/capture``."""
    project = make_project(tmp_path / "project", config=config)
    package = register(project, SHA1)
    if with_baseline:
        baseline(project, package)
    record_endpoint(project, "iris", "iris-v1-aaaa", SHA1)
    destination = tmp_path / "capture"
    write_serving_config(
        project,
        "iris",
        {
            "destination": str(destination),
            "sampling_percentage": 100.0,
            "capture_input": True,
            "capture_output": True,
        },
    )
    return project, LocalArtifactStore(destination)
