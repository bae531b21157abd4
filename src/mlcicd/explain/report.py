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

import hashlib
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
from mlcicd.errors import ArtifactError, ExplainError, MlcicdError, ProcessingError
from mlcicd.monitor.baseline import label_column, model_sources, training_channel
from mlcicd.monitor.dataset import Table, read_channel
from mlcicd.process import run_streaming
from mlcicd.processing.base import parse_report
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
    None when it was never explained.

    The store may be a bucket or directory others can write, and a report becomes an
    endpoint's Clarify baseline: it is read only if its bytes have the sha256 recorded with
    the package when the register stage stored it (``lineage["explanation"]``), and parsed
    with the size and depth bounds of every report mlcicd reads. A report whose bytes differ
    is an :class:`ArtifactError`; one of a package registered without the sha256 (before
    mlcicd recorded it), or gone since it was recorded, an :class:`ExplainError`: it is not
    used, as the stack's deploy Lambda does not use a report model.json has no sha256 of."""
    store = project.store
    uri = store.uri(project.config.store.models_bucket, report_key(package))
    recorded = package.lineage.get("explanation")
    expected = recorded.get("sha256") if isinstance(recorded, dict) else None
    if not store.exists(uri):
        if expected:
            raise ExplainError(
                f"the explanation report of model {package.arn} is gone from {uri}",
                hint=f"explain the model anew: {reexplain(package)}",
            )
        return None
    if not isinstance(expected, str) or not expected:
        raise ExplainError(
            f"model {package.arn} was registered without the sha256 of its explanation report "
            f"{uri} (by an mlcicd that did not record it), so the report cannot be told from a "
            "replacement: it is not used",
            hint=f"explain the model anew, which records it: {reexplain(package)}",
        )
    data = store.read_bytes(uri)
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ArtifactError(
            f"the explanation report of model {package.arn} at {uri} is not the one the register "
            f"stage stored (sha256 {digest[:12]}…, recorded {expected[:12]}…): it is not used",
            hint="whoever can write the model store replaced it: find who (the bucket's access "
            f"log or CloudTrail, the directory's owners); then explain the model anew: "
            f"{reexplain(package)}",
        )
    try:
        report = parse_report(data, f"the explanation report of model {package.arn} at {uri}")
    except ProcessingError as exc:  # the processing steps' reader, its error ours
        hint = f"explain the model anew: {reexplain(package)}"
        raise ArtifactError(exc.message, hint=hint) from exc
    return {**report, "uri": uri}


def reexplain(package: ModelPackage) -> str:
    """How a model gets a report whose sha256 is recorded: the register stage of a run of its
    commit stores one (the model is found registered); meanwhile ``--rows`` explains rows
    from the model itself, trusting nothing stored."""
    commit = (package.commit_sha or "")[:12] or "its commit"
    return (
        f"a run of the commit that trained it ({commit}: `mlcicd run`) stores a new report "
        f"with its sha256 at register; `mlcicd explain {package.arn} --rows FILE` explains "
        "rows anew meanwhile"
    )


def _store(project: Project, package: ModelPackage, report: dict[str, Any]) -> str:
    """Store ``report`` where :func:`load_report` looks, and record its sha256 with every
    package of the model, the only bytes :func:`load_report` will read there."""
    data = (json.dumps(report, indent=2) + "\n").encode()
    bucket = project.config.store.models_bucket
    uri = project.store.put_bytes(data, bucket, report_key(package)).uri
    project.state.record_explanation(
        package.group_name,
        package.model_sha256,
        package.training_job,
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return uri


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
    baseline_file = settings.baseline_file
    return read_inputs(
        channel,
        path,
        label_column(config),
        settings,
        baseline=None if baseline_file is None else (source_dir / baseline_file, baseline_file),
        rows_file=rows_file,
    )


def read_inputs(
    channel: str,
    path: Path,
    label: str | None,
    settings: ExplainConfig,
    *,
    baseline: tuple[Path, str] | None = None,
    rows_file: Path | None = None,
) -> Inputs:
    """:func:`prepare` once the channel is found: ``path`` holds channel ``channel``'s CSV;
    ``baseline`` is the baseline CSV and the name it is shown by (None: the channel). The
    stack's processing job (:mod:`mlcicd.explain.job`) calls it with its inputs' paths."""
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
    if baseline is None:
        background, baseline_from = training, f"channel {channel} (k-means summary)"
    else:
        background = _columns_of(baseline[0], features, label)
        baseline_from = baseline[1]
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
        write_spec(
            Path(tmp),
            inputs,
            code_dir=source_dir / config.deploy.source_dir,
            entry_point=config.deploy.entry_point,
            model_dir=model_dir,
            prediction_key=prediction_key(config),
        )
        answer = _run(python, environment, Path(tmp), config.build.timeout, log)
    return {**answer, "model": package.arn, "dataset": inputs.dataset}


def write_spec(
    folder: Path,
    inputs: Inputs,
    *,
    code_dir: Path,
    entry_point: str,
    model_dir: Path,
    prediction_key: str,
) -> dict[str, Any]:
    """:mod:`mlcicd.explain.compute`'s spec, written to ``folder/spec.json`` with the rows and
    the baseline beside it; returned too (the stack's job runs it in its own process)."""
    np.save(folder / "rows.npy", inputs.rows)
    np.save(folder / "background.npy", inputs.background)
    spec = {
        "code_dir": str(code_dir),
        "entry_point": entry_point,
        "model_dir": str(model_dir),
        "rows": str(folder / "rows.npy"),
        "background": str(folder / "background.npy"),
        "features": inputs.features,
        "prediction_key": prediction_key,
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    return spec


def prediction_key(config: Config) -> str:
    """The key of a JSON object answer holding the predictions (the challenger's)."""
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
    try:
        existing = load_report(project, package)
    except MlcicdError as exc:  # replaced, unverifiable or gone: this stage writes it anew
        log(f"{exc.message}: explaining the model anew")
        existing = None
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
