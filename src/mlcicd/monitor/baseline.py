"""A model version's data-quality baseline: statistics.json and constraints.json from its
training channel, stored beside the model and recorded with its version.

The register stage computes it for each newly registered model (a failure to — no CSV in the
channel, a label that is not a column — is logged and never fails the run); ``mlcicd monitor
baseline`` computes it again. Both read the channel as it was in the model's commit (the
exported tree the run used, exported again from git if it is gone).

The files go to the model store at ``<pipeline>/<training job>/baseline/<digest>/``, beside
the job's ``output/model.tar.gz``, named by the sha256 of their content (the same data gives
the same bytes, so recomputing an unchanged baseline writes nothing new), each written
atomically with its sha256 recorded; they are checked against it when read back.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcicd import git
from mlcicd.config import Config, MonitorConfig
from mlcicd.config.processing import baseline_channel, parse_reference
from mlcicd.errors import MlcicdError, MonitorError
from mlcicd.monitor.constraints import suggest_constraints, violations_document
from mlcicd.monitor.dataset import Table, read_channel
from mlcicd.monitor.statistics import dataset_statistics
from mlcicd.processing.artifacts import output_directory
from mlcicd.project import Project
from mlcicd.state import ModelBaseline, ModelPackage
from mlcicd.store.base import ArtifactStore

STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
VIOLATIONS = "constraint_violations.json"
MAX_BASELINE_BYTES = 64 << 20  # per-feature statistics and sketches; anything larger is not one


@dataclass
class BaselineDocuments:
    statistics: dict[str, Any]
    constraints: dict[str, Any]
    dataset: dict[str, Any]  # what it was computed from: channel, files, label, item_count


def training_channel(
    config: Config, source_dir: Path, channels_at: Mapping[str, Path] | None = None
) -> tuple[str, Path]:
    """The channel a baseline reads (``monitor.channel``; else ``training``, or the only one)
    and where it is: in ``channels_at`` (where a run found each channel, a processing step's
    output among them), else in ``source_dir``."""
    channels = config.train.channels
    name = baseline_channel(config)
    if name is None:
        raise MonitorError(
            "no training channel to compute a data-quality baseline from"
            + (f" among {', '.join(channels)}" if channels else " (train.channels names none)"),
            hint="name one with monitor.channel in mlcicd.yaml",
        )
    if channels_at is not None and name in channels_at:
        return name, channels_at[name]
    location = Path(channels[name])
    return name, location if location.is_absolute() else source_dir / location


def label_column(config: Config) -> str | None:
    """The column that is not a feature: ``monitor.label``, else the challenger's ``label``."""
    if config.monitor.label is not None:
        return config.monitor.label
    return config.gate.challenger.label if config.gate.challenger is not None else None


def compute_baseline(
    config: Config, source_dir: Path, channels: Mapping[str, Path] | None = None
) -> BaselineDocuments:
    channel, path = training_channel(config, source_dir, channels)
    table = read_channel(path, channel=channel, label=label_column(config))
    return baseline_of(table, channel, config.monitor)


def baseline_of(table: Table, channel: str, monitor: MonitorConfig) -> BaselineDocuments:
    """A channel's baseline from its table (read by ``read_channel``)."""
    if not table.names:
        raise MonitorError(
            f"training channel {channel!r} has no column but the label {table.label!r}"
        )
    statistics = dataset_statistics(table.names, table.columns, table.rows)
    constraints = suggest_constraints(
        statistics, drift_threshold=monitor.drift_threshold, method=monitor.comparison_method
    )
    dataset = {
        "channel": channel,
        "files": table.files,
        "label": table.label,
        "item_count": table.rows,
        "rows_read": table.seen,
        "features": table.names,
    }
    return BaselineDocuments(statistics, constraints, dataset)


def encode_document(document: Mapping[str, Any] | list[Any]) -> bytes:
    """A monitoring document's bytes as stored (indented JSON, a final newline): the baseline's
    digest is of these bytes, and every check writes its documents the same way."""
    return (json.dumps(document, indent=2) + "\n").encode()


def store_check(
    store: ArtifactStore,
    bucket: str,
    folder: str,
    statistics: dict[str, Any],
    violations: list[dict[str, str]],
) -> tuple[str, str]:
    """What a check against a baseline leaves in ``bucket`` under ``folder``, as Model Monitor
    does: the data's ``statistics.json`` and the ``constraint_violations.json``; their URIs.
    The endpoint's check (``mlcicd monitor check``) and the data check both store it here."""
    stats = store.put_bytes(encode_document(statistics), bucket, f"{folder}/{STATISTICS}")
    found = store.put_bytes(
        encode_document(violations_document(violations)), bucket, f"{folder}/{VIOLATIONS}"
    )
    return stats.uri, found.uri


def store_baseline(
    project: Project, package: ModelPackage, documents: BaselineDocuments
) -> ModelBaseline:
    """Write the two files beside the model, then record them with the model version."""
    statistics, constraints = (
        encode_document(documents.statistics),
        encode_document(documents.constraints),
    )
    digest = hashlib.sha256(statistics + b"\0" + constraints).hexdigest()[:16]
    job = package.training_job or f"model-{package.model_sha256[:12]}"
    folder = f"{package.group_name}/{job}/baseline/{digest}"
    bucket, store = project.config.store.models_bucket, project.store
    stats_ref = store.put_bytes(statistics, bucket, f"{folder}/{STATISTICS}")
    constraints_ref = store.put_bytes(constraints, bucket, f"{folder}/{CONSTRAINTS}")
    data_digest = (package.lineage.get("training_job") or {}).get("data_digest")
    return project.state.record_baseline(
        ModelBaseline(
            group_name=package.group_name,
            version=package.version,
            statistics_uri=stats_ref.uri,
            statistics_sha256=stats_ref.sha256,
            constraints_uri=constraints_ref.uri,
            constraints_sha256=constraints_ref.sha256,
            dataset={**documents.dataset, "data_digest": data_digest},
        )
    )


def describe(baseline: ModelBaseline) -> str:
    """One line: what a baseline was computed from, and where it is."""
    data = baseline.dataset
    label = f", label {data['label']} left out" if data.get("label") else ""
    folder = baseline.statistics_uri.rsplit("/", 1)[0]
    return (
        f"{data.get('item_count')} rows, {len(data.get('features', []))} features from channel "
        f"{data.get('channel')}{label}: {STATISTICS}, {CONSTRAINTS} in {folder}"
    )


def ensure_baseline(
    project: Project,
    config: Config,
    package: ModelPackage,
    source_dir: Path,
    log: Callable[[str], None],
    *,
    channels: Mapping[str, Path] | None = None,
) -> ModelBaseline | None:
    """The register stage's step: the model's baseline, computed if it has none. Never raises
    an mlcicd error: a model without a baseline is still a model (``monitor check`` says so)."""
    existing = project.state.get_baseline(package.group_name, package.version)
    if existing is not None:
        log(f"data-quality baseline of {package.arn}: already computed")
        return existing
    try:
        baseline = store_baseline(project, package, compute_baseline(config, source_dir, channels))
    except MlcicdError as exc:
        log(f"no data-quality baseline for {package.arn}: {exc.headline}")
        return None
    log(f"data-quality baseline of {package.arn}: {describe(baseline)}")
    return baseline


def rebaseline(project: Project, version: int | None = None) -> ModelBaseline:
    """Compute (again) the baseline of model ``version`` of the pipeline's group (default: the
    newest Approved one) from its commit's training channel."""
    state, config = project.state, project.config
    group = config.pipeline
    if version is None:
        packages = state.list_model_packages(group)
        approved = [p for p in packages if p.status == "Approved"]
        if not approved:
            raise MonitorError(
                f"model package group {group} has no Approved model",
                hint="run the pipeline, or name a version with --model",
            )
        package = approved[0]
    else:
        package = state.get_model_package(group, version)
    source_dir, channels = model_sources(project, package)
    return store_baseline(project, package, compute_baseline(config, source_dir, channels))


def model_sources(project: Project, package: ModelPackage) -> tuple[Path, dict[str, Path]]:
    """The model's commit, exported, and the channels a processing step made for it: where
    its code and training data are found again after the run."""
    commit = package.lineage.get("commit") or {}
    if not commit.get("commit") or not commit.get("tree"):
        raise MonitorError(
            f"model {package.arn} has no commit in its lineage: its training data cannot be found"
        )
    source_dir = project.state_dir / "sources" / commit["tree"]
    if not source_dir.is_dir():
        git.export_tree(project.repo, commit["commit"], project.rel, source_dir)
    return source_dir, _processed_channels(project, project.config, package)


def _processed_channels(project: Project, config: Config, package: ModelPackage) -> dict[str, Path]:
    """The training channels that were a processing step's output (``prepare.train``), as
    the model's lineage recorded them: extracted again from the store, checked by digest."""
    steps = {s.name: s for s in config.processing}
    recorded = package.lineage.get("processing") or {}
    found: dict[str, Path] = {}
    for name, location in config.train.channels.items():
        ref = parse_reference(location, steps)
        if ref is None:
            continue
        output = ((recorded.get(ref.step) or {}).get("outputs") or {}).get(ref.output)
        if not isinstance(output, dict):
            raise MonitorError(
                f"training channel {name!r} is {location}, and model {package.arn}'s lineage "
                "does not record that output",
                hint="the model was trained before the channel came from a processing step",
            )
        found[name] = output_directory(project, output)
    return found


def load_baseline(
    project: Project, baseline: ModelBaseline
) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json of a recorded baseline, each checked against its
    recorded sha256."""
    documents = []
    with tempfile.TemporaryDirectory(prefix="mlcicd-baseline-") as tmp:
        for uri, sha256 in (
            (baseline.statistics_uri, baseline.statistics_sha256),
            (baseline.constraints_uri, baseline.constraints_sha256),
        ):
            path = project.store.get_file(uri, Path(tmp) / "document.json", expected_sha256=sha256)
            try:
                documents.append(parse_baseline_document(path, uri))
            except MonitorError as exc:
                raise MonitorError(
                    exc.message,
                    hint=f"compute it again: mlcicd monitor baseline --model {baseline.version}",
                ) from exc
    return documents[0], documents[1]


def parse_baseline_document(path: Path, where: str) -> dict[str, Any]:
    """A baseline's statistics.json or constraints.json at ``path`` (``where`` names it in the
    error): a JSON object of at most :data:`MAX_BASELINE_BYTES`. One nested deeper than the
    parser goes ("[[[[…") is a MonitorError like any other bad file, not a RecursionError."""
    if path.stat().st_size > MAX_BASELINE_BYTES:
        raise MonitorError(f"{where}: larger than {MAX_BASELINE_BYTES} bytes, not a baseline")
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MonitorError(f"{where} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise MonitorError(f"{where}: expected a JSON object, got {type(document).__name__}")
    return document


__all__ = [
    "BaselineDocuments",
    "baseline_of",
    "compute_baseline",
    "describe",
    "ensure_baseline",
    "label_column",
    "load_baseline",
    "parse_baseline_document",
    "rebaseline",
    "store_baseline",
    "training_channel",
]
