"""``mlcicd monitor check``: an endpoint's captured requests against its models' baselines —
SageMaker's data-quality monitoring execution, run once, here.

Each captured record is checked against the baseline of the model its variant served at the
record's time: the endpoint's history says which endpoint config served then, the config which
model each variant held. Records are grouped by (variant, model); each group gets its own
``statistics.json`` and ``constraint_violations.json``, written to the artifact store at
``monitoring/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss>-v<version>/`` (the artifacts bucket),
SageMaker's monitoring outputs in its layout.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlcicd.durations import parse_duration
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import MonitorError, NothingToCheckError
from mlcicd.fsutil import read_json
from mlcicd.monitor.baseline import load_baseline, store_check
from mlcicd.monitor.capture import CapturedRecord, CaptureScan, read_capture
from mlcicd.monitor.constraints import FeatureCheck, check
from mlcicd.monitor.dataset import Row, positional_name
from mlcicd.monitor.statistics import Cell, dataset_statistics
from mlcicd.project import Project
from mlcicd.serving.layout import CONFIG_FILE
from mlcicd.state import EndpointConfigRecord, EndpointRecord, ModelPackage

VIOLATIONS_EXIT_CODE = 3  # `mlcicd monitor check` found violations (0: none; errors: 1 or 2)
SINGLE_VARIANT = "AllTraffic"
ENABLE_CAPTURE = (
    "set deploy.data_capture: {enabled: true} in mlcicd.yaml (it captures input and "
    "output) and deploy again"
)


@dataclass
class VariantCheck:
    """One variant's records served by one model, against that model's baseline."""

    variant: str
    model: str  # group/version
    records: int
    rows: int
    baseline_statistics: str
    baseline_constraints: str
    features: list[FeatureCheck]
    violations: list[dict[str, str]]
    statistics_uri: str = ""
    violations_uri: str = ""


@dataclass
class CheckReport:
    endpoint: str
    since: float
    until: float
    destination: str
    files: int
    lines: int
    records: int
    skipped: dict[str, int]
    shadow_copies: int
    drift_threshold: float
    comparison_method: str
    variants: list[VariantCheck] = field(default_factory=list)

    @property
    def violation_count(self) -> int:
        return sum(len(v.violations) for v in self.variants)


def parse_since(text: str, now: float) -> float:
    """``1h``, ``30m``, ``1h30m``, ``2d``, ``90s``, ``1w`` before ``now``; or an ISO 8601 time
    (local time unless it says its zone). ValueError when it is neither."""
    seconds = parse_duration(text)
    if seconds is not None:
        return now - seconds
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (1h, 30m, 2d) nor an ISO 8601 time"
        ) from None
    return when.timestamp()


def capture_destination(project: Project, endpoint: str) -> str:
    """Where ``endpoint`` writes its captured requests; MonitorError if it captures none."""
    record = _endpoint(project, endpoint)
    if record.backend == "local":
        path = (
            LocalEndpointBackend(project.state_dir / "endpoints").endpoint_dir(endpoint)
            / CONFIG_FILE
        )
        try:
            capture = read_json(path).get("capture")
        except (OSError, ValueError, AttributeError) as exc:
            raise MonitorError(
                f"endpoint {endpoint} has no readable {path}", hint="deploy it again"
            ) from exc
        if not isinstance(capture, dict) or not capture.get("destination"):
            raise NothingToCheckError(
                f"endpoint {endpoint} does not capture its requests", hint=ENABLE_CAPTURE
            )
        if capture.get("capture_input") is False:
            raise NothingToCheckError(
                f"endpoint {endpoint} captures its responses only",
                hint="add input to deploy.data_capture.capture in mlcicd.yaml and deploy again",
            )
        return str(capture["destination"])
    config = next(
        (c for c in project.state.endpoint_configs(endpoint) if c.name == record.config_name), None
    )
    settings = config.spec.get("data_capture") if config is not None else None
    if not isinstance(settings, list) or len(settings) < 3:
        raise NothingToCheckError(
            f"endpoint {endpoint} does not capture its requests", hint=ENABLE_CAPTURE
        )
    if not settings[1]:
        raise NothingToCheckError(
            f"endpoint {endpoint} captures its responses only",
            hint="add input to deploy.data_capture.capture in mlcicd.yaml and deploy again",
        )
    if len(settings) > 3 and isinstance(settings[3], str):
        return settings[3]
    return project.store.uri(project.config.store.artifacts_bucket, "data-capture")


def _endpoint(project: Project, endpoint: str) -> EndpointRecord:
    record = project.state.get_endpoint(endpoint)
    if record is None:
        names = ", ".join(e.name for e in project.state.list_endpoints()) or "none yet"
        raise NothingToCheckError(f"endpoint {endpoint} does not exist", hint=f"endpoints: {names}")
    return record


class ServedModels:
    """Which model each variant of an endpoint served, when: from its history of configs."""

    def __init__(self, project: Project, endpoint: str) -> None:
        self.project, self.endpoint = project, endpoint
        self.record = _endpoint(project, endpoint)
        history = [h for h in project.state.endpoint_history(endpoint) if h.config_name]
        self.times = [h.at for h in history]
        self.names = [str(h.config_name) for h in history]
        self.configs = {c.name: c for c in project.state.endpoint_configs(endpoint)}
        self._cache: dict[tuple[str, str], ModelPackage | None] = {}

    def configs_at(self, when: float) -> list[str]:
        """The config serving at ``when`` first; then the later ones, then the earlier ones: a
        record written just before its config's change was recorded still finds its variant."""
        if not self.names:
            return [self.record.config_name] if self.record.config_name else []
        index = max(bisect.bisect_right(self.times, when) - 1, 0)
        return [self.names[index], *self.names[index + 1 :], *reversed(self.names[:index])]

    def model(self, variant: str, when: float) -> ModelPackage:
        names = self.configs_at(when)
        package = None
        for name in names:
            key = (name, variant)
            if key not in self._cache:
                config = self.configs.get(name)
                self._cache[key] = self._package(config, variant) if config is not None else None
            package = self._cache[key]
            if package is not None:
                break
        if package is None:
            stamp = datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")
            raise MonitorError(
                f"cannot tell which model variant {variant} of endpoint {self.endpoint} served "
                f"at {stamp}" + (f" (endpoint config {names[0]})" if names else ""),
                hint="its endpoint configs are recorded when `mlcicd run` deploys it",
            )
        return package

    def _package(self, config: EndpointConfigRecord, variant: str) -> ModelPackage | None:
        variants = config.spec.get("variants")
        if isinstance(variants, list) and variants:
            sha = next(
                (v[1] for v in variants if isinstance(v, list) and v and v[0] == variant), None
            )
        else:  # one model: the deploy stage names its variant as SageMaker does
            sha = config.model_sha256 if variant == SINGLE_VARIANT else None
        group = config.model_group or self.record.model_group or self.project.config.pipeline
        return self.project.state.find_model_package(group, sha) if sha else None


def check_endpoint(
    project: Project, endpoint: str, *, since: float, until: float | None = None
) -> CheckReport:
    """Check what ``endpoint`` captured from ``since`` against its models' baselines, write the
    reports to the artifact store, and say what was found."""
    until = time.time() if until is None else until
    destination = capture_destination(project, endpoint)
    served = ServedModels(project, endpoint)
    scan = read_capture(destination, endpoint, since, until)
    if not scan.records:
        raise NothingToCheckError(
            f"endpoint {endpoint} captured no readable request since "
            f"{datetime.fromtimestamp(since):%Y-%m-%d %H:%M:%S}",
            hint=_nothing_hint(scan),
        )
    groups: dict[tuple[str, int], list[CapturedRecord]] = defaultdict(list)
    packages: dict[tuple[str, int], ModelPackage] = {}
    for record in scan.records:
        package = served.model(record.variant, record.at)
        key = (record.variant, package.version)
        groups[key].append(record)
        packages[key] = package
    missing = sorted(
        {
            p.arn
            for p in packages.values()
            if project.state.get_baseline(p.group_name, p.version) is None
        }
    )
    if missing:
        commands = "; ".join(
            f"mlcicd monitor baseline --model {arn.rsplit('/', 1)[1]}" for arn in missing
        )
        raise NothingToCheckError(
            f"no data-quality baseline for model {', '.join(missing)}, which served the captured "
            "requests",
            hint=f"compute it: {commands}",
        )
    monitor = project.config.monitor
    report = CheckReport(
        endpoint=endpoint,
        since=since,
        until=until,
        destination=destination,
        files=scan.files,
        lines=scan.lines,
        records=len(scan.records),
        skipped=dict(scan.skipped),
        shadow_copies=scan.shadow_copies,
        drift_threshold=monitor.drift_threshold,
        comparison_method=monitor.comparison_method,
    )
    stamp = datetime.fromtimestamp(until, UTC)
    for (variant, version), records in sorted(groups.items()):
        package = packages[(variant, version)]
        report.variants.append(_check_group(project, endpoint, variant, package, records, stamp))
    return report


def _nothing_hint(scan: CaptureScan) -> str:
    if scan.skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in scan.skipped.most_common())
        return f"{sum(scan.skipped.values())} captured lines were unreadable: {reasons}"
    if (
        scan.shadow_copies
    ):  # not scan.lines: those hold the records of the hour outside the window too
        return "only shadow copies were captured in that time; widen --since"
    return (
        f"nothing is captured in {scan.destination} for that time: send requests, or widen --since"
    )


def _check_group(
    project: Project,
    endpoint: str,
    variant: str,
    package: ModelPackage,
    records: list[CapturedRecord],
    stamp: datetime,
) -> VariantCheck:
    baseline = project.state.get_baseline(package.group_name, package.version)
    assert baseline is not None  # checked by the caller
    statistics, constraints = load_baseline(project, baseline)
    names = [f["name"] for f in constraints["features"]]
    rows = [row for record in records for row in record.rows]
    columns, extras = _columns(rows, names)
    monitor = project.config.monitor
    present = {n: c for n, c in columns.items() if n in names}
    # The thresholds are mlcicd.yaml's now, not those recorded in constraints.json when the
    # baseline was computed: changing monitor.drift_threshold needs no new baseline.
    features, violations = check(
        statistics,
        constraints,
        present,
        len(rows),
        extra=[n for n in extras if any(c is not None for c in columns[n])],
        drift_threshold=monitor.drift_threshold,
        method=monitor.comparison_method,
    )
    result = VariantCheck(
        variant=variant,
        model=package.arn,
        records=len(records),
        rows=len(rows),
        baseline_statistics=baseline.statistics_uri,
        baseline_constraints=baseline.constraints_uri,
        features=features,
        violations=violations,
    )
    ordered = [n for n in names if n in present] + extras
    current = dataset_statistics(ordered, [columns[n] for n in ordered], len(rows))
    folder = f"{endpoint}/{variant}/{stamp:%Y/%m/%d/%H}/{stamp:%M-%S}-v{package.version}"
    result.statistics_uri, result.violations_uri = store_check(
        project.store,
        project.config.store.artifacts_bucket,
        f"monitoring/{folder}",
        current,
        violations,
    )
    return result


def _columns(rows: list[Row], names: list[str]) -> tuple[dict[str, list[Cell]], list[str]]:
    """Columns by name: the baseline's features that some row has, then the extra columns
    (positional beyond the baseline's width, ``_c<i>``; or keys it has not)."""
    index = {n: i for i, n in enumerate(names)}
    seen: set[str] = set()
    extras: list[str] = []
    for row in rows:
        if isinstance(row, dict):
            keys = list(row)
        else:
            keys = names[: len(row)] + [positional_name(i) for i in range(len(names), len(row))]
        for key in keys:
            if key in index:
                seen.add(key)
            elif key not in extras:
                extras.append(key)
    wanted = [n for n in names if n in seen] + extras
    columns: dict[str, list[Cell]] = {n: [] for n in wanted}
    for row in rows:
        if isinstance(row, dict):
            for n in wanted:
                columns[n].append(row.get(n))
            continue
        for n in wanted:
            i = index[n] if n in index else _position(n)
            columns[n].append(row[i] if i is not None and i < len(row) else None)
    return columns, extras


def _position(name: str) -> int | None:
    return int(name[2:]) if name.startswith("_c") and name[2:].isdigit() else None


__all__ = [
    "VIOLATIONS_EXIT_CODE",
    "CheckReport",
    "ServedModels",
    "VariantCheck",
    "capture_destination",
    "check_endpoint",
    "parse_since",
]
