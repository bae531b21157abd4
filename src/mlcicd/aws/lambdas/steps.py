"""The steps of ``processing:`` in the pipeline: the training Lambda runs them as SageMaker
ProcessingJobs, before and after the training job, as ``mlcicd run`` runs them.

The Train action is one state machine, each CodePipeline continuation one step of it::

    process    the steps that run before training, in waves (every step whose inputs exist)
    train      the training job; a channel ``prepare.train`` is that step's output on S3
    evaluate   the steps after training; ``train.model`` is the job's model.tar.gz
    gate       the metrics and the steps' reports (``thresholds.evaluate_thresholds``)

One source for each part, shared with ``mlcicd run``: the order and the meaning of a reference
are ``mlcicd.config.processing``'s, each job's request is ``create_processing_job_request``
(what ``processing.backend: sagemaker`` sends), its cache key ``processing.base.cache_key`` and
a report is read by ``processing.base.parse_report``.

A step's job is ``<pipeline>-<step>-<run>`` (``<run>``: the first CodePipeline job's id, hashed),
its code and path inputs are copied from the source artifact to
``<pipeline>/processing/<job>/input/`` in the models bucket, its outputs are written by
SageMaker to ``<pipeline>/processing/<job>/output/<name>/``. Its cache key takes the digests the
function can know: the step's ``source_dir`` and each path input hashed from the source
artifact's files (names and sha256s: the commit has no git here), an earlier step's output as
the job that wrote it, ``train.model`` as its sha256, the environment as ``build.requirements``'
digest. A completed job is remembered under ``<pipeline>/processing/cache/<key>.json``; a later
run whose step has the same key reuses that job while it is Completed and each of its outputs
holds an object.

The index is only a pointer: whoever can write to the models bucket (a processing job's own
role can) could point a step at any Completed job and plant its "outputs" under that name.
The job it names is reused only when SageMaker's own record agrees — tagged with this pipeline,
this step and this cache key when the Lambda started it (``mlcicd:cache-key``; S3 cannot
change a job's tags) — and an index that is not JSON or names no valid job is a cache miss:
the step runs again. The reused job's outputs must still be as it wrote them (one version
each in the versioned bucket, :mod:`mlcicd.aws.joboutputs`), as must any output before a later
job is given it: one written again fails the action, naming it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from pathlib import PurePosixPath
from typing import Any, Protocol

from mlcicd.aws import names as n
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.joboutputs import JobRun, all_written_once, job_run, written_once
from mlcicd.aws.lambdas.provenance import EXECUTION_TAG, reuse_record
from mlcicd.aws.lambdas.runtime import log, read_report
from mlcicd.aws.processing_jobs import (
    CODE_INPUT,
    create_processing_job_request,
    describe_processing_job,
    failure_reason,
    start_processing_job,
)
from mlcicd.aws.training_jobs import describe_training_job
from mlcicd.config import Config, ProcessingStepConfig, TrainConfig
from mlcicd.config.processing import (
    TRAIN,
    Phase,
    Reference,
    dependencies,
    parse_reference,
    phase,
    report_names,
    step_order,
)
from mlcicd.errors import ArtifactError, AwsError, ConfigError, ProcessingError
from mlcicd.processing.base import cache_key
from mlcicd.shapes import NAME_RE
from mlcicd.store.s3 import parse_s3_uri

RUNNING = ("InProgress", "Stopping")
CACHE_KEY_TAG = "mlcicd:cache-key"
_TUPLES = ("outputs", "arguments")
_WHERE = "the function's environment"


class SourceTree:
    """The source artifact (a zip of the commit): its files under a path, their digest."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.members = [m for m in archive.infolist() if not m.is_dir()]

    def files(self, root: str) -> list[tuple[zipfile.ZipInfo, str]]:
        """Each file at ``root`` (one file, or a directory's files) with its path below it."""
        found = []
        for member in self.members:
            if member.filename == root:
                found.append((member, PurePosixPath(root).name))
            elif member.filename.startswith(root + "/"):
                found.append((member, member.filename[len(root) + 1 :]))
        return sorted(found, key=lambda pair: pair[1])

    def digest(self, root: str) -> str:
        """The files at ``root`` as a step's cache key sees them: each name and sha256."""
        files = self.files(root)
        if not files:
            return "missing"
        digest = hashlib.sha256()
        for member, rel in files:
            content = hashlib.sha256()
            with self.archive.open(member) as data:
                while chunk := data.read(1 << 20):
                    content.update(chunk)
            digest.update(f"{rel}\0{content.hexdigest()}\0".encode())
        return digest.hexdigest()

    def upload(self, s3: AwsClient, bucket: str, root: str, prefix: str) -> int:
        """Copy the files at ``root`` under ``prefix``; how many there were."""
        files = self.files(root)
        for member, rel in files:
            with self.archive.open(member) as data:
                s3.upload_fileobj(data, bucket, prefix + rel)
        return len(files)


class OpenSource(Protocol):
    def __call__(self) -> AbstractContextManager[SourceTree]: ...


@dataclass(frozen=True)
class ProcessingSettings:
    """``processing:`` as the stack passes it (``MLCICD_PROCESSING``), and where things go."""

    pipeline: str
    models_bucket: str
    role_arn: str
    kms_key_id: str | None
    project_dir: str
    channels: dict[str, str]
    steps: tuple[ProcessingStepConfig, ...] = ()
    requirements: str = "requirements.txt"
    vpc_config: dict[str, list[str]] | None = None  # network:, as the training job's
    inter_container_encryption: bool = False
    # The pipeline execution this invocation serves (``provenance.execution_id``): every job
    # started is tagged with it. Set per invocation from the event, never from the token.
    execution: str = ""

    @classmethod
    def parse(cls, raw: Any, **common: Any) -> ProcessingSettings:
        """From the variable's JSON (``{}`` when the project has no steps)."""
        known = {f.name for f in fields(ProcessingStepConfig)}
        steps = []
        for i, step in enumerate(raw.get("steps", [])):
            if not isinstance(step, dict) or not set(step) <= known or "name" not in step:
                raise ConfigError(
                    f"{n.ENV_PROCESSING}: step {i} is not a processing step: {step!r}", path=_WHERE
                )
            values: dict[str, Any] = {k: tuple(v) if k in _TUPLES else v for k, v in step.items()}
            steps.append(ProcessingStepConfig(**values))
        requirements = str(raw.get("requirements", "requirements.txt"))
        return cls(steps=tuple(steps), requirements=requirements, **common)

    @property
    def config(self) -> Config:
        """Just enough of mlcicd.yaml for ``config.processing``'s graph functions."""
        return Config(
            pipeline=self.pipeline,
            processing=self.steps,
            train=TrainConfig(channels=dict(self.channels)),
        )

    def phase_steps(self, when: Phase) -> list[ProcessingStepConfig]:
        config = self.config
        return [s for s in step_order(config) if phase(config, s.name) == when]

    def reference(self, value: str) -> Reference | None:
        return parse_reference(value, {s.name: s for s in self.steps})

    def in_project(self, location: str) -> str:
        """A path of mlcicd.yaml as a path in the source artifact."""
        return "/".join(p for p in (self.project_dir, location.strip("/")) if p and p != ".")

    def job_prefix(self, job: str) -> str:
        return f"{self.pipeline}/processing/{job}"

    def output_uri(self, job: str, output: str) -> str:
        """Where SageMaker writes ``output`` of ``job`` (a prefix: read it with a ``/``)."""
        return f"s3://{self.models_bucket}/{self.job_prefix(job)}/output/{output}"

    @property
    def execution_tag(self) -> dict[str, str]:
        """The tag naming the execution that starts a job (none outside an invocation)."""
        return {EXECUTION_TAG: self.execution} if self.execution else {}

    def cache_index(self, key: str) -> str:
        return f"{self.pipeline}/processing/cache/{key}.json"

    def reuse_record(self, step: str) -> str:
        """Where this execution records the earlier job it reuses for ``step`` (its cache
        key's): a continuation token claiming the step reused must name that job
        (``provenance.check_token``)."""
        return reuse_record(self.pipeline, self.execution, step)


def advance(
    settings: ProcessingSettings,
    state: dict[str, Any],
    when: Phase,
    open_source: OpenSource,
) -> bool:
    """One look at the steps of phase ``when``: note the jobs that completed, fail on one that
    did not, start every step whose inputs now exist. True when all of them have completed.
    ``state`` (the continuation's) keeps ``steps`` ({step: job}) and ``done`` (step names)."""
    started: dict[str, str] = state.setdefault("steps", {})
    done: list[str] = state.setdefault("done", [])
    sagemaker = client("sagemaker")
    steps = settings.phase_steps(when)
    for step in steps:
        if (
            step.name in started
            and step.name not in done
            and _finished(settings, step, started[step.name], state)
        ):
            done.append(step.name)
    config = settings.config
    source: SourceTree | None = None
    with _Lazy(open_source) as lazy:
        # A cached step is done at once, and may make the next ones ready: look again.
        while ready := [
            s for s in steps if s.name not in started and dependencies(s, config) <= set(done)
        ]:
            for step in ready:
                source = source or lazy.get()
                name, cached = _start(sagemaker, settings, state, step, source)
                started[step.name] = name
                if cached:
                    done.append(step.name)
    return all(s.name in done for s in steps)


class _Lazy:
    """The source artifact, downloaded only when a step is started."""

    def __init__(self, open_source: OpenSource) -> None:
        self.open_source = open_source
        self.context: AbstractContextManager[SourceTree] | None = None

    def __enter__(self) -> _Lazy:
        return self

    def get(self) -> SourceTree:
        self.context = self.open_source()
        return self.context.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.context is not None:
            self.context.__exit__(None, None, None)


def started_already(name: str, where: str) -> bool:
    """Whether job ``name`` exists: a retried invocation looks at it, not starts it again."""
    if describe_processing_job(client("sagemaker"), name) is None:
        return False
    log(f"{where}: processing job {name} exists already: not starting it again")
    return True


def ended_job(name: str, where: str, *, failed: bool = False) -> dict[str, Any] | None:
    """Job ``name``'s description once it has completed (``failed``: or ended otherwise), None
    while it runs; ``ProcessingError`` naming ``where`` when it is gone, failed or stopped."""
    described = describe_processing_job(client("sagemaker"), name)
    if described is None:
        raise ProcessingError(
            f"{where}: processing job {name} does not exist (deleted while the pipeline waited?)"
        )
    status = str(described["ProcessingJobStatus"])
    if status in RUNNING:
        log(f"{where}: processing job {name}: {status}")
        return None
    failure = job_failure(described)
    if failure is not None and not failed:
        raise ProcessingError(f"{where}: {failure.message}", hint=failure.hint)
    return dict(described)


def job_failure(described: Mapping[str, Any]) -> ProcessingError | None:
    """Why a job that ended did not complete (None: it did), with where its log is."""
    name, status = described["ProcessingJobName"], str(described["ProcessingJobStatus"])
    if status == "Completed":
        return None
    return ProcessingError(
        f"processing job {name} {status.lower()}: {failure_reason(described)}",
        hint=f"its log: /aws/sagemaker/ProcessingJobs, stream {name}/…",
    )


def _finished(
    settings: ProcessingSettings,
    step: ProcessingStepConfig,
    name: str,
    state: Mapping[str, Any],
) -> bool:
    if ended_job(name, f"step {step.name}") is None:
        return False
    log(f"step {step.name}: processing job {name} completed")
    key = state.get("keys", {}).get(step.name)
    if key:
        client("s3").put_object(
            Bucket=settings.models_bucket,
            Key=settings.cache_index(key),
            Body=json.dumps({"job": name, "step": step.name}).encode(),
            ContentType="application/json",
        )
    return True


def _start(
    sagemaker: AwsClient,
    settings: ProcessingSettings,
    state: dict[str, Any],
    step: ProcessingStepConfig,
    source: SourceTree,
) -> tuple[str, bool]:
    """Start ``step``'s job, or find the completed one with its cache key: (job, cached)."""
    s3 = client("s3")
    inputs: dict[str, str] = {}
    paths: dict[str, str] = {}
    digests: dict[str, str] = {}
    for name, value in step.inputs.items():
        ref = settings.reference(value)
        if ref is None:
            root = settings.in_project(value)
            if PurePosixPath(value).is_absolute() or not source.files(root):
                raise ProcessingError(
                    f"step {step.name}: input {name!r}: {value} is not in the source artifact "
                    f"(commit {str(state.get('revision') or '?')[:12]})",
                    hint="commit the data, or point the input at an earlier step's output",
                )
            paths[name], digests[name] = root, source.digest(root)
        elif ref.step == TRAIN:
            model = state["model"]
            # One version now is the one hashed then: no role may delete a version.
            bucket, key = parse_s3_uri(model["uri"])
            written_once(s3, bucket, key, job=training_run(str(state["job"])))
            inputs[name], digests[name] = model["uri"], model["sha256"]
        else:
            producer = state["steps"][ref.step]
            inputs[name] = _job_output(s3, settings, producer, ref.output)
            digests[name] = f"job {producer} output {ref.output}"
    code_root = settings.in_project(step.source_dir)
    key = cache_key(
        step,
        code=source.digest(code_root),
        inputs=digests,
        environment=source.digest(settings.in_project(settings.requirements)),
    )
    state.setdefault("keys", {})[step.name] = key[:16]
    cached = _cached(s3, sagemaker, settings, step, key[:16])
    if cached is not None:
        log(f"step {step.name}: processing job {cached} already ran this script on these inputs")
        state.setdefault("cached", []).append(step.name)
        s3.put_object(
            Bucket=settings.models_bucket,
            Key=settings.reuse_record(step.name),
            Body=json.dumps({"job": cached}).encode(),
            ContentType="application/json",
        )
        return cached, True
    name = n.processing_job_name(settings.pipeline, f"{step.name}-{state['run'][:12]}")
    if started_already(name, f"step {step.name}"):
        return name, False
    prefix = input_prefix(settings, name)
    bucket = settings.models_bucket
    if not source.upload(s3, bucket, code_root, f"{prefix}/{CODE_INPUT}/"):
        raise ProcessingError(
            f"step {step.name}: source_dir {step.source_dir} is not in the source artifact",
            hint=f"commit it, or fix processing's {step.name}.source_dir",
        )
    for input_name, root in paths.items():
        source.upload(s3, bucket, root, f"{prefix}/{input_name}/")
        inputs[input_name] = f"s3://{bucket}/{prefix}/{input_name}/"
    request = create_processing_job_request(
        name=name,
        image=step.image or str(state["image"]),
        role_arn=settings.role_arn,
        code_uri=f"s3://{bucket}/{prefix}/{CODE_INPUT}/",
        entry_point=step.entry_point,
        inputs={k: inputs[k] for k in step.inputs},
        outputs={o: settings.output_uri(name, o) for o in step.outputs},
        arguments=step.arguments,
        environment=step.environment,
        instance_type=step.instance_type,
        instance_count=step.instance_count,
        max_runtime=step.max_runtime,
        network_isolation=step.network_isolation,
        kms_key_id=settings.kms_key_id,
        vpc_config=settings.vpc_config,
        inter_container_encryption=settings.inter_container_encryption,
        tags={
            "mlcicd:pipeline": settings.pipeline,
            "mlcicd:step": step.name,
            "mlcicd:commit": str(state.get("revision") or "")[:256],
            CACHE_KEY_TAG: key[:16],
            **settings.execution_tag,
        },
    )
    start_processing_job(sagemaker, request, where=f"step {step.name}: ")
    log(f"step {step.name}: processing job {name} started on {step.instance_type}")
    return name, False


def _cached(
    s3: AwsClient,
    sagemaker: AwsClient,
    settings: ProcessingSettings,
    step: ProcessingStepConfig,
    key: str,
) -> str | None:
    """The completed job an earlier run of the same step with the same key left, if its
    outputs are all still there."""
    index = settings.cache_index(key)
    try:
        body = s3.get_object(Bucket=settings.models_bucket, Key=index)["Body"]
        with body:
            data = body.read(4096)
    except AwsError as exc:
        if exc.code in ("NoSuchKey", "404"):
            return None
        raise
    try:
        job = json.loads(data)["job"]
    except (ValueError, RecursionError, TypeError, KeyError):
        job = None
    if not isinstance(job, str) or not NAME_RE.match(job):
        log(f"step {step.name}: the cache index {index} names no job: running the step")
        return None
    described = describe_processing_job(sagemaker, job)
    if described is None or described["ProcessingJobStatus"] != "Completed":
        return None
    tags = sagemaker.list_tags(ResourceArn=described["ProcessingJobArn"]).get("Tags") or []
    wanted = {"mlcicd:pipeline": settings.pipeline, "mlcicd:step": step.name, CACHE_KEY_TAG: key}
    if {t["Key"]: t["Value"] for t in tags if t["Key"] in wanted} != wanted:
        log(
            f"step {step.name}: the cache index {index} names job {job}, which SageMaker does "
            "not know as this step's with this key: running the step"
        )
        return None
    for output in step.outputs:  # each still there, and still as the job wrote it
        prefix = f"{settings.job_prefix(job)}/output/{output}/"
        if not all_written_once(s3, settings.models_bucket, prefix, job=job_run(described)):
            return None
    return job


def channel_uris(settings: ProcessingSettings, state: Mapping[str, Any]) -> dict[str, str]:
    """The training channels that are steps' outputs, as the S3 prefixes SageMaker wrote
    (each checked to hold only what its job wrote: a job is about to read it)."""
    uris = {}
    for channel, value in settings.channels.items():
        ref = settings.reference(value)
        if ref is not None:
            producer = state["steps"][ref.step]
            uris[channel] = _job_output(client("s3"), settings, producer, ref.output)
    return uris


def _job_output(s3: AwsClient, settings: ProcessingSettings, job: str, output: str) -> str:
    """``output`` of ``job`` as the prefix another job will read, once every object under it
    is checked to be the one version ``job`` wrote. SageMaker reads a prefix as it is when the
    next job starts, so this narrows the window for a replacement to that start; it cannot
    close it (docs/processing.md, "Not yet")."""
    uri = settings.output_uri(job, output)
    all_written_once(
        s3,
        settings.models_bucket,
        f"{settings.job_prefix(job)}/output/{output}/",
        job=processing_run(job),
    )
    return uri + "/"


def reports(settings: ProcessingSettings, state: Mapping[str, Any]) -> dict[str, Any]:
    """The steps' reports the gate may read, by the names a gate key may start with
    (``report_names``), each read from where SageMaker wrote it."""
    found: dict[str, Any] = {}
    for name, step in report_names(settings.config).items():
        found[name] = job_report(
            settings,
            state["steps"][step.name],
            str(step.report),
            f"step {step.name}",
            hint=f"write it to /opt/ml/processing/output/{step.report}",
        )
    return found


# The jobs the Lambda runs of its own (the data check, the explainer): mlcicd's code in the
# commit's image, on one instance — by default this one, for at most an hour (monitor.* and
# explain.* instance_type and max_runtime; an older stack's environment has neither).
OWN_JOB_INSTANCE_TYPE = "ml.m5.large"
OWN_JOB_MAX_RUNTIME = 3600
# Their code: it calls the image's mlcicd (the version it was built with, with numpy and shap).
OWN_JOB_SCRIPT = "import sys\nfrom {} import processing_job as run\nsys.exit(run(sys.argv[1:]))\n"


def own_job_resources(raw: Mapping[str, Any], variable: str) -> tuple[str, int]:
    """``instance_type`` and ``max_runtime`` of a job of the Lambda's own, from its setting's
    JSON (``variable``: where it came from, for the error)."""
    instance_type = raw.get("instance_type", OWN_JOB_INSTANCE_TYPE)
    max_runtime = raw.get("max_runtime", OWN_JOB_MAX_RUNTIME)
    if (
        not isinstance(instance_type, str)
        or not instance_type.startswith("ml.")
        or isinstance(max_runtime, bool)
        or not isinstance(max_runtime, int)
        or max_runtime < 1
    ):
        raise ConfigError(
            f"{variable}: instance_type {instance_type!r} and max_runtime {max_runtime!r} are "
            "not a processing job's",
            path=_WHERE,
            hint="the stack sets it from mlcicd.yaml: redeploy with `mlcicd aws deploy`",
        )
    return instance_type, max_runtime


def input_prefix(settings: ProcessingSettings, job: str) -> str:
    """Where a job's inputs are uploaded (its script under ``code/``)."""
    return f"{settings.job_prefix(job)}/input"


def start_own_job(
    settings: ProcessingSettings,
    name: str,
    *,
    image: str,
    script: str,
    module: str,
    inputs: Mapping[str, str],
    output: str,
    arguments: Sequence[str],
    step: str,
    where: str,
    instance_type: str = OWN_JOB_INSTANCE_TYPE,
    max_runtime: int = OWN_JOB_MAX_RUNTIME,
) -> None:
    """Start processing job ``name``: ``script``, calling ``module``'s ``processing_job``,
    run in ``image`` on ``inputs``, its one ``output`` beside it, on one ``instance_type`` for
    at most ``max_runtime`` seconds; ``step`` tags it, ``where`` names it in the errors and
    the log."""
    bucket, prefix = settings.models_bucket, input_prefix(settings, name)
    source = OWN_JOB_SCRIPT.format(module).encode()
    client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{CODE_INPUT}/{script}", Body=source)
    request = create_processing_job_request(
        name=name,
        image=image,
        role_arn=settings.role_arn,
        code_uri=f"s3://{bucket}/{prefix}/{CODE_INPUT}/",
        entry_point=script,
        inputs=inputs,
        outputs={output: settings.output_uri(name, output)},
        arguments=arguments,
        environment={},
        instance_type=instance_type,
        instance_count=1,
        max_runtime=max_runtime,
        kms_key_id=settings.kms_key_id,
        tags={"mlcicd:pipeline": settings.pipeline, "mlcicd:step": step, **settings.execution_tag},
        vpc_config=settings.vpc_config,
        inter_container_encryption=settings.inter_container_encryption,
    )
    start_processing_job(client("sagemaker"), request, where=f"{where}: ")
    log(f"{where}: processing job {name} started on {instance_type}")


def job_report(settings: ProcessingSettings, job: str, path: str, where: str, hint: str) -> Any:
    """The report ``job`` wrote to ``output/<path>`` — the one version it wrote
    (``joboutputs.written_once``) — parsed as data; ``ProcessingError`` naming ``where`` and
    the object when it wrote none (``hint``: what to do), or no report."""
    key = f"{settings.job_prefix(job)}/output/{path}"
    where = f"{where}: report {path} (s3://{settings.models_bucket}/{key})"
    written = written_once(client("s3"), settings.models_bucket, key, job=processing_run(job))
    report = None
    if written is not None:
        report = read_report(settings.models_bucket, key, where, version_id=written.version_id)
    if report is None:
        raise ProcessingError(f"{where}: the job wrote no such file", hint=hint)
    return report


def processing_run(name: str) -> JobRun:
    """When processing job ``name`` ran — what its outputs are checked against
    (``joboutputs.job_run``); ArtifactError when SageMaker no longer knows it."""
    return _run(describe_processing_job(client("sagemaker"), name), f"processing job {name}")


def training_run(name: str) -> JobRun:
    """When training job ``name`` ran (as :func:`processing_run`)."""
    return _run(describe_training_job(client("sagemaker"), name), f"training job {name}")


def _run(described: Mapping[str, Any] | None, job: str) -> JobRun:
    if described is None:
        raise ArtifactError(
            f"{job} does not exist: its outputs cannot be checked",
            hint="release the change again to run the pipeline anew",
        )
    return job_run(described)


def iter_jobs(state: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Each step and its job, for the model's lineage."""
    yield from sorted((state.get("steps") or {}).items())


__all__ = [
    "ProcessingSettings",
    "SourceTree",
    "advance",
    "channel_uris",
    "iter_jobs",
    "reports",
]
