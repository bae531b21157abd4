"""A batch transform job as plain data: SageMaker's CreateTransformJob, field by field.

:class:`TransformSettings` holds the fields a user sets (``TransformInput``'s ContentType,
SplitType and CompressionType; BatchStrategy, MaxPayloadInMB, MaxConcurrentTransforms;
``TransformOutput``'s Accept and AssembleWith; ``DataProcessing``), with SageMaker's
defaults; :func:`check_settings` refuses a combination SageMaker refuses, naming the flag
(``--split-type``) or the key (``transform.split_type``) through ``where``.
:class:`TransformModel` is what runs (the model file, its digest, the inference code and the
Python of its build), :class:`TransformJobSpec` one job, :class:`TransformBackend` what runs
it and :class:`TransformJobResult` how it ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

from mlcicd.errors import TransformError

IN_PROGRESS, COMPLETED, FAILED, STOPPED = "InProgress", "Completed", "Failed", "Stopped"
STATUSES = (IN_PROGRESS, COMPLETED, FAILED, STOPPED)

SPLIT_TYPES = ("None", "Line")
BATCH_STRATEGIES = ("MultiRecord", "SingleRecord")
ASSEMBLE_WITH = ("None", "Line")
JOIN_SOURCES = ("None", "Input")
COMPRESSION_TYPES = ("None", "Gzip")
# SageMaker's limit for MaxPayloadInMB, and its default.
MAX_PAYLOAD_MB, DEFAULT_PAYLOAD_MB = 100, 6
# The content types whose records the DataProcessing fields can read: a CSV row is a JSON
# array of its cells; a JSON Lines record (or a JSON body split on lines) a JSON value.
CSV, JSON, JSONLINES = "text/csv", "application/json", "application/jsonlines"
FILTERABLE = (CSV, JSON, JSONLINES)
OUTPUT_SUFFIX = ".out"
MANIFEST = ".mlcicd-transform.json"  # in an output directory: which job's outputs it holds

Where = Callable[[str], str]


def flag(name: str) -> str:
    """The CLI flag of a settings field: ``split_type`` → ``--split-type``."""
    return "--" + {"max_payload_mb": "max-payload-mb"}.get(name, name.replace("_", "-"))


@dataclass(frozen=True)
class TransformSettings:
    """How a job reads, batches, calls and writes (SageMaker's names and defaults)."""

    content_type: str = CSV
    accept: str | None = None  # default: the content type
    split_type: str = "Line"  # SageMaker's default is None; a batch file is lines in practice
    batch_strategy: str = "MultiRecord"
    max_payload_mb: float = DEFAULT_PAYLOAD_MB
    max_concurrent: int = 1
    compression: str = "None"
    assemble_with: str = "Line"
    input_filter: str = "$"
    join_source: str = "None"
    output_filter: str = "$"

    @property
    def output_type(self) -> str:
        return self.accept or self.content_type

    @property
    def max_payload_bytes(self) -> int:
        return int(self.max_payload_mb * 1024 * 1024)

    @property
    def processes_records(self) -> bool:
        """Does a record need parsing (a filter or a join), or may lines go to the model as is?"""
        return (self.input_filter, self.output_filter, self.join_source) != ("$", "$", "None")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def check_settings(settings: TransformSettings, where: Where = flag) -> None:
    """Refuse what SageMaker refuses, naming the setting as the user wrote it (``where``)."""
    choices = {
        "split_type": SPLIT_TYPES,
        "batch_strategy": BATCH_STRATEGIES,
        "assemble_with": ASSEMBLE_WITH,
        "join_source": JOIN_SOURCES,
        "compression": COMPRESSION_TYPES,
    }
    for name, allowed in choices.items():
        value = getattr(settings, name)
        if value not in allowed:
            raise TransformError(
                f"{where(name)} {value!r} is not one of {', '.join(allowed)}",
                hint="SageMaker's values are case-sensitive",
            )
    for name in ("content_type", "accept"):
        value = getattr(settings, name)
        if value is not None and (not value or "/" not in value or not value.isprintable()):
            raise TransformError(
                f"{where(name)} {value!r} is not a media type", hint="e.g. text/csv"
            )
    if not 0 < settings.max_payload_mb <= MAX_PAYLOAD_MB:
        raise TransformError(
            f"{where('max_payload_mb')} {settings.max_payload_mb} is out of range",
            hint=f"SageMaker takes more than 0 and up to {MAX_PAYLOAD_MB} (MB)",
        )
    if not isinstance(settings.max_concurrent, int) or not 1 <= settings.max_concurrent <= 64:
        raise TransformError(
            f"{where('max_concurrent')} {settings.max_concurrent!r} is out of range",
            hint="use 1 to 64 worker processes (one per core is the fastest)",
        )
    if settings.processes_records:
        _check_data_processing(settings, where)


def _check_data_processing(settings: TransformSettings, where: Where) -> None:
    from mlcicd.transform.dataproc import parse_path

    named = [
        n for n in ("input_filter", "join_source", "output_filter") if getattr(settings, n) != "$"
    ]
    named = [n for n in named if not (n == "join_source" and settings.join_source == "None")]
    if settings.content_type not in FILTERABLE:
        raise TransformError(
            f"{where(named[0])} needs CSV or JSON records, and {where('content_type')} is "
            f"{settings.content_type}",
            hint=f"DataProcessing reads {', '.join(FILTERABLE)} (as SageMaker does)",
        )
    if settings.split_type != "Line":
        raise TransformError(
            f"{where(named[0])} works on records: set {where('split_type')} Line",
            hint="SageMaker applies filters and joins per line",
        )
    if settings.join_source == "Input" and settings.assemble_with != "Line":
        raise TransformError(
            f"{where('join_source')} Input writes one line per record: set "
            f"{where('assemble_with')} Line"
        )
    for name in ("input_filter", "output_filter"):
        try:
            parse_path(getattr(settings, name))
        except ValueError as exc:
            raise TransformError(
                f"{where(name)} {getattr(settings, name)!r}: {exc}",
                hint="use $, $[1:], $[0,-1], $.features or $['id','SageMakerOutput']",
            ) from exc


@dataclass(frozen=True)
class TransformModel:
    """The model a job runs: a registered version's model.tar.gz, code and environment."""

    ref: str  # group/version
    model_file: Path
    model_sha256: str
    code_dir: Path
    entry_point: str = "inference.py"
    python: Path | None = None  # the build's interpreter; None: this one
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TransformJobSpec:
    """One job: its name, the model, where it reads and writes, and how."""

    name: str
    model: TransformModel
    input: str
    output: str
    settings: TransformSettings = TransformSettings()
    run_id: int | None = None


@dataclass
class TransformProgress:
    """Where a running job is: what the terminal shows and the record keeps."""

    objects_total: int = 0
    objects_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    rows_in: int = 0
    rows_out: int = 0
    started: float = 0.0


@dataclass
class TransformJobResult:
    status: str
    failure_reason: str | None
    objects: int
    rows_in: int
    rows_out: int
    outputs: list[str] = field(default_factory=list)


class TransformBackend(Protocol):
    """Runs a transform job to its end: Completed, or a :class:`TransformError` saying why."""

    TYPE: ClassVar[str]

    def log_path(self, name: str) -> Path:
        """Where job ``name``'s log is (the model code's prints and tracebacks)."""
        ...

    def input_digest(self, source: str) -> str:
        """What ``source`` holds, as a digest: the pipeline's stage is cached by it."""
        ...

    def run(
        self,
        spec: TransformJobSpec,
        on_progress: Callable[[TransformProgress], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> TransformJobResult: ...
