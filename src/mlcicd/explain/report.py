"""A model version's explanation: computed in its build environment, stored beside it.

The report is a JSON document at ``<group>/<training job>/explain/<model sha256[:16]>.json``
in the model store: where it is follows from the model's record (its group, training job and
digest), so a registered model needs no new column to find it, and the same model bytes are
explained once (the register stage's step is cached by the model's digest). An explainer that
fails at register writes a document with its ``error`` instead, so ``mlcicd explain`` says
why; the next register of the same model tries again.

The data is read here, in mlcicd's process, as the data-quality baseline reads it
(:mod:`mlcicd.monitor.dataset`); the model is only ever loaded in its build environment
(:mod:`mlcicd.explain.compute`), as the gate's evaluation loads it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlcicd.archive import safe_extract
from mlcicd.config import Config, ExplainConfig
from mlcicd.environments import ensure_environment, environment_extras, venv_environment
from mlcicd.errors import ExplainError, MlcicdError
from mlcicd.monitor.baseline import label_column, model_sources, training_channel
from mlcicd.monitor.dataset import Table, read_channel
from mlcicd.process import run_streaming
from mlcicd.project import Project, cache_dir
from mlcicd.state import ModelPackage


@dataclass
class Inputs:
    """What the explainer is given: rows to explain, the baseline, and where they came from."""

    features: list[str]
    rows: np.ndarray
    background: np.ndarray
    dataset: dict[str, Any]


def report_key(package: ModelPackage) -> str:
    job = package.training_job or f"model-{package.model_sha256[:12]}"
    return f"{package.group_name}/{job}/explain/{package.model_sha256[:16]}.json"


def load_report(project: Project, package: ModelPackage) -> dict[str, Any] | None:
    """The stored report of ``package`` (an ``error`` key when it could not be explained), or
    None when it was never explained."""
    store = project.store
    uri = store.uri(project.config.store.models_bucket, report_key(package))
    if not store.exists(uri):
        return None
    report: dict[str, Any] = json.loads(store.read_bytes(uri))
    return {**report, "uri": uri}


def _store(project: Project, package: ModelPackage, report: dict[str, Any]) -> str:
    data = (json.dumps(report, indent=2) + "\n").encode()
    bucket = project.config.store.models_bucket
    return project.store.put_bytes(data, bucket, report_key(package)).uri


def _matrix(table: Table, where: str) -> np.ndarray:
    """The table's columns as floats; a text or missing cell is an error naming its column."""
    for name, column in zip(table.names, table.columns, strict=True):
        bad = next((c for c in column if not isinstance(c, int | float)), "absent")
        if bad != "absent":
            shown = "an empty cell" if bad is None else f"text ({bad!r})"
            raise ExplainError(
                f"feature {name!r} of {where} holds {shown}: SHAP explains numeric features",
                hint="encode the column as numbers in the data, or leave explain: out",
            )
    return np.asarray(table.columns, dtype=float).T.reshape(table.rows, len(table.names))


def prepare(
    config: Config,
    settings: ExplainConfig,
    source_dir: Path,
    channels: Mapping[str, Path] | None = None,
    rows_file: Path | None = None,
) -> Inputs:
    """The rows to explain (``rows_file``, else ``explain.rows`` sampled from the training
    channel) and the baseline (``explain.baseline``: the channel, or a CSV in the commit)."""
    channel, path = training_channel(config, source_dir, channels)
    label = label_column(config)
    table = read_channel(path, channel=channel, label=label)
    if label is None and table.names:  # as the gate's evaluation: the label is the last column
        label = table.names.pop()
        table.columns.pop()
    training = _matrix(table, f"training channel {channel!r}")
    features = table.names
    if rows_file is not None:
        rows = _columns_of(rows_file, features, label)
        rows_from = str(rows_file)
    else:
        draw = np.random.default_rng(0)  # the same data gives the same report
        count = min(settings.rows, len(training))
        rows = training[np.sort(draw.choice(len(training), count, replace=False))]
        rows_from = f"channel {channel}"
    baseline_file = settings.baseline_file
    if baseline_file is None:
        background, baseline_from = training, f"channel {channel} (k-means summary)"
    else:
        background = _columns_of(source_dir / baseline_file, features, label)
        baseline_from = baseline_file
    dataset = {
        "channel": channel,
        "label": label,
        "rows_from": rows_from,
        "baseline": baseline_from,
        "baseline_rows": len(background),
    }
    return Inputs(features, rows, background, dataset)


def _columns_of(path: Path, features: list[str], label: str | None) -> np.ndarray:
    """A CSV's rows in the training channel's feature order (by header, else by position)."""
    if not path.is_file():
        raise ExplainError(f"{path} is not a file", hint="give a CSV with a header row")
    table = read_channel(path, channel=path.name, label=None)
    if label is not None and label in table.names:
        keep = [i for i, n in enumerate(table.names) if n != label]
        table = Table([table.names[i] for i in keep], [table.columns[i] for i in keep], table.rows)
    if table.names != features and sorted(table.names) == sorted(features):
        order = [table.names.index(f) for f in features]
        table = Table(features, [table.columns[i] for i in order], table.rows)
    if len(table.names) != len(features):
        raise ExplainError(
            f"{path.name} has {len(table.names)} feature columns, the model has "
            f"{len(features)} ({', '.join(features)})",
            hint="give the training channel's feature columns",
        )
    return _matrix(table, path.name)


def compute(
    project: Project,
    config: Config,
    package: ModelPackage,
    *,
    source_dir: Path,
    python: str,
    environment: Path,
    channels: Mapping[str, Path] | None = None,
    rows_file: Path | None = None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Explain ``package`` in the build environment at ``environment``; the report."""
    settings = config.explain or ExplainConfig()
    inputs = prepare(config, settings, source_dir, channels, rows_file)
    scratch = project.state_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="explain-") as tmp:
        model_dir = Path(tmp, "model")
        archive = project.model_archive(package.model_uri, package.model_sha256)
        safe_extract(archive, model_dir, expected_sha256=package.model_sha256)
        np.save(Path(tmp, "rows.npy"), inputs.rows)
        np.save(Path(tmp, "background.npy"), inputs.background)
        spec = {
            "code_dir": str(source_dir / config.deploy.source_dir),
            "entry_point": config.deploy.entry_point,
            "model_dir": str(model_dir),
            "rows": str(Path(tmp, "rows.npy")),
            "background": str(Path(tmp, "background.npy")),
            "features": inputs.features,
            "prediction_key": _prediction_key(config),
        }
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        answer = _run(python, environment, Path(tmp), config.build.timeout, log)
    return {**answer, "model": package.arn, "dataset": inputs.dataset}


def _prediction_key(config: Config) -> str:
    challenger = config.gate.challenger
    return challenger.prediction_key if challenger is not None else "predictions"


def _run(
    python: str, environment: Path, cwd: Path, timeout: float, log: Callable[[str], None]
) -> dict[str, Any]:
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if not line.startswith("{"):
            log(line)

    outcome = run_streaming(
        [python, "-m", "mlcicd.explain.compute", str(cwd / "spec.json")],
        cwd=cwd,
        env=venv_environment(environment),
        on_line=on_line,
        max_runtime_seconds=timeout,
    )
    last = next((line for line in reversed(lines) if line.startswith("{")), "{}")
    try:
        answer = json.loads(last)
    except ValueError:
        answer = {}
    if outcome.timed_out:
        raise ExplainError(f"the explainer took longer than build.timeout ({timeout:g}s)")
    if outcome.exit_code != 0 or "report" not in answer:
        reason = answer.get("error") or (lines[-1] if lines else f"exit {outcome.exit_code}")
        raise ExplainError(f"the explainer failed: {reason}")
    report: dict[str, Any] = answer["report"]
    return report


def ensure_report(
    project: Project,
    config: Config,
    package: ModelPackage,
    *,
    source_dir: Path,
    python: str,
    environment: Path,
    channels: Mapping[str, Path] | None,
    log: Callable[[str], None],
) -> dict[str, Any] | None:
    """The register stage's step: the model's report, computed unless it has one. A failure is
    stored (and logged) as the report's ``error``; it raises only with ``explain.required``."""
    settings = config.explain
    if settings is None:
        return None
    existing = load_report(project, package)
    # A report from before online explanations keeps no baseline: an endpoint needs one.
    stale = settings.online and existing is not None and "baseline" not in existing
    if existing is not None and "error" not in existing and not stale:
        log(f"explanation of {package.arn}: already computed")
        return existing
    try:
        report = compute(
            project,
            config,
            package,
            source_dir=source_dir,
            python=python,
            environment=environment,
            channels=channels,
            log=log,
        )
    except MlcicdError as exc:
        _store(project, package, {"model": package.arn, "error": exc.headline})
        log(f"no explanation for {package.arn}: {exc.headline}")
        if settings.required:
            raise ExplainError(
                f"explain.required: {package.arn} could not be explained: {exc.headline}",
                hint="fix the cause, or set explain.required: false to register it without one",
            ) from exc
        return None
    report["uri"] = _store(project, package, report)
    log(f"explanation of {package.arn}: {summary(report)}")
    return report


def top_features(report: dict[str, Any], count: int = 3) -> list[tuple[str, float]]:
    ranked = sorted(report["importance"].items(), key=lambda kv: -kv[1])
    return [(name, float(value)) for name, value in ranked[:count]]


def summary(report: dict[str, Any]) -> str:
    """One line: the explainer, its output and the top features."""
    if "error" in report:
        return f"not explained: {report['error']}"
    top = ", ".join(f"{name} {value:.3g}" for name, value in top_features(report))
    return (
        f"{report['explainer']} explainer on the {report['output']}, {report['rows']} rows; "
        f"top: {top}"
    )


def explain_version(
    project: Project,
    package: ModelPackage,
    *,
    rows_file: Path | None = None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """``mlcicd explain``: the report stored at register, or — for ``rows_file`` — a new one
    over those rows, computed in the model's build environment (rebuilt if it was pruned)."""
    if rows_file is None:
        report = load_report(project, package)
        if report is None:
            raise ExplainError(
                f"model {package.arn} was not explained when it was registered",
                hint="add explain: to mlcicd.yaml and run the pipeline, or give --rows FILE",
            )
        if "error" in report:
            raise ExplainError(
                f"model {package.arn} could not be explained at register: {report['error']}"
            )
        return report
    if not rows_file.is_file():
        raise ExplainError(f"--rows: {rows_file} is not a file", hint="give a CSV of feature rows")
    config = project.config
    source_dir, channels = model_sources(project, package)
    env = ensure_environment(
        source_dir / config.build.requirements,
        environment_extras(replace(config, explain=config.explain or ExplainConfig())),
        cache_dir(),
        log=log,
    )
    return compute(
        project,
        config,
        package,
        source_dir=source_dir,
        python=str(env.python),
        environment=env.path,
        channels=channels,
        rows_file=rows_file.resolve(),
        log=log,
    )
