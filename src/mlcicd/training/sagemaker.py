"""The SageMaker training backend (``train.backend: sagemaker``): the same training job, run
by SageMaker from this machine.

``run`` does what the SageMaker Python SDK's estimator does for script mode: it uploads each
channel and ``sourcedir.tar.gz`` (the training code, named to the container by the
``sagemaker_program`` and ``sagemaker_submit_directory`` hyperparameters) to the S3
artifact store, starts the job with the configured image, role and instances (managed spot
training with checkpoints when ``use_spot``; output and volume encrypted with
``train.kms_key``), then polls DescribeTrainingJob every
``poll_seconds`` — passing on each status change and each line of the job's CloudWatch log
(``/aws/sagemaker/TrainingJobs``) — until the job ends. Its model.tar.gz is downloaded to
``<jobs_root>/<name>/output/model.tar.gz`` with its sha256, so the stages after it work as
with the local backend.

``train.network_isolation`` (the default) runs the job with no network: the container cannot
fetch its code from S3, so — as the SDK's framework estimators do — the code goes in as the
``code`` channel and ``sagemaker_submit_directory`` names the archive there
(``/opt/ml/input/data/code/sourcedir.tar.gz``); SageMaker downloads it with the channels.

Layout in the store (bucket ``store.models_bucket``, prefix the pipeline)::

    <pipeline>/<job>/input/data/<channel>/…      the channels
    <pipeline>/<job>/source/sourcedir.tar.gz      the code
    <pipeline>/<job>/output/model.tar.gz          SageMaker's output (S3OutputPath = <pipeline>)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from mlcicd.archive import pack_dir
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.images import require_image
from mlcicd.aws.joblogs import CloudWatchTail, JobLog, OnLog, epoch
from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.aws.names import TRAINING_JOBS_LOG_GROUP, poll_seconds
from mlcicd.aws.training_jobs import (
    CODE_CHANNEL,
    CODE_CHANNEL_SOURCEDIR,
    PROGRAM,
    SUBMIT_DIRECTORY,
    TERMINAL_STATUSES,
    create_training_job_request,
    failure_reason,
    final_metrics,
    metric_list,
    model_uri,
    status_transitions,
)
from mlcicd.config import Config
from mlcicd.errors import ArtifactError, AwsError, ConfigError, TrainingError
from mlcicd.fsutil import atomic_write_json
from mlcicd.store.base import ArtifactStore
from mlcicd.training.base import (
    TrainingJobResult,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_metrics,
)


class SageMakerTrainingBackend:
    TYPE: ClassVar[str] = "sagemaker"

    def __init__(
        self,
        jobs_root: Path,
        settings: SageMakerJobSettings,
        *,
        use_spot: bool = False,
        max_wait: int | None = None,
        output_path: str | None = None,
        checkpoints: bool = False,
    ) -> None:
        self.jobs_root = jobs_root
        self.settings = settings
        self.use_spot = use_spot
        self.max_wait = max_wait
        self.output_path = (output_path or settings.uri(settings.prefix)).rstrip("/")
        self.checkpoints = checkpoints

    @classmethod
    def from_config(
        cls, config: Config, store: ArtifactStore, jobs_root: Path
    ) -> SageMakerTrainingBackend:
        train = config.train
        settings = SageMakerJobSettings.from_config(
            config,
            store,
            jobs="training",
            bucket=config.store.models_bucket,
            prefix=config.pipeline,
            image=train.image,
            role_arn=train.role,
            instance_type=train.instance_type,
            instance_count=train.instance_count,
            network_isolation=train.network_isolation,
            kms_key_id=train.kms_key,
        )
        if train.output_path and not train.output_path.startswith("s3://"):
            raise ConfigError(
                f"expected an s3:// URI, got {train.output_path!r}", key="train.output_path"
            )
        return cls(
            jobs_root,
            settings,
            use_spot=train.use_spot,
            max_wait=train.max_wait,
            output_path=train.output_path,
            checkpoints=train.checkpoints,
        )

    def job_dir(self, name: str) -> Path:
        return self.jobs_root / name

    def check_image(self) -> str | None:
        """Raise ``ArtifactError`` if the image is an ECR image that was never pushed (SageMaker
        would say so only minutes into the job, and obscurely); else a line for the log, or
        None for an image in another registry (not checked). See ``mlcicd.aws.images``."""
        return require_image(self.settings.image)

    # --- run -------------------------------------------------------------------------------

    def run(self, spec: TrainingJobSpec, *, on_log: OnLog | None = None) -> TrainingJobResult:
        entry = spec.source_dir / spec.entry_point
        if not entry.is_file():
            raise TrainingError(
                f"entry point {entry} does not exist",
                hint="check train.source_dir and train.entry_point",
            )
        job_dir = self.job_dir(spec.name)
        log = JobLog(job_dir / "logs" / "training.log", on_log)
        try:
            return self._run(spec, job_dir, log)
        finally:
            log.close()

    def _run(self, spec: TrainingJobSpec, job_dir: Path, log: JobLog) -> TrainingJobResult:
        sagemaker = client("sagemaker")
        request = self._request(spec, job_dir, log, sagemaker.meta.region_name)
        try:
            sagemaker.create_training_job(**request)
        except AwsError as exc:
            raise TrainingError(
                f"SageMaker did not start training job {spec.name}: {exc.message}", hint=exc.hint
            ) from exc
        log(
            f"training job {spec.name} created on {self.settings.instance_count} x "
            f"{self.settings.instance_type} with {self.settings.image}"
        )
        series: list[tuple[str, float, float]] = []
        try:
            described = self._wait(spec, sagemaker, log, series)
        except KeyboardInterrupt:
            self._stop(sagemaker, spec.name, log)
            raise
        atomic_write_json(job_dir / "description.json", described)
        return self._result(spec, job_dir, described, log, series)

    def _request(
        self, spec: TrainingJobSpec, job_dir: Path, log: JobLog, region: str | None
    ) -> dict[str, Any]:
        base = f"{self.settings.prefix}/{spec.name}"
        channels: dict[str, str] = {}
        if self.settings.network_isolation and any(c.name == CODE_CHANNEL for c in spec.channels):
            raise ConfigError(
                f"the channel name {CODE_CHANNEL!r} is taken by the training code when the job "
                "runs network-isolated",
                key=f"train.channels.{CODE_CHANNEL}",
                hint="rename the channel, or set train.network_isolation: false",
            )
        for channel in spec.channels:
            files = (
                [channel.source]
                if channel.source.is_file()
                else sorted(
                    p
                    for p in channel.source.rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts
                )
            )
            if not files:
                raise TrainingError(f"channel {channel.name!r}: {channel.source} holds no files")
            for path in files:
                rel = (
                    path.name
                    if path == channel.source
                    else path.relative_to(channel.source).as_posix()
                )
                self.settings.store.put_file(
                    path, self.settings.bucket, f"{base}/input/data/{channel.name}/{rel}"
                )
            channels[channel.name] = self.settings.uri(f"{base}/input/data/{channel.name}") + "/"
            log(
                f"channel {channel.name}: {len(files)} file(s) uploaded to {channels[channel.name]}"
            )
        sourcedir = job_dir / "source" / "sourcedir.tar.gz"
        pack_dir(spec.source_dir, sourcedir)
        code = self.settings.store.put_file(
            sourcedir, self.settings.bucket, f"{base}/source/sourcedir.tar.gz"
        )
        log(f"code {spec.source_dir} uploaded to {code.uri}")
        submit_directory = code.uri
        if (
            self.settings.network_isolation
        ):  # SageMaker brings the code in; the container fetches nothing
            channels[CODE_CHANNEL] = code.uri.rpartition("/")[0] + "/"
            submit_directory = CODE_CHANNEL_SOURCEDIR
        hyperparameters: dict[str, Any] = {
            **spec.hyperparameters,
            PROGRAM: spec.entry_point,
            SUBMIT_DIRECTORY: submit_directory,
            "sagemaker_container_log_level": 20,
            "sagemaker_job_name": spec.name,
        }
        if region:
            hyperparameters["sagemaker_region"] = region
        return create_training_job_request(
            name=spec.name,
            image=self.settings.image,
            role_arn=self.settings.role_arn,
            channels=channels,
            output_path=self.output_path,
            instance_type=self.settings.instance_type,
            instance_count=self.settings.instance_count,
            max_runtime=spec.max_runtime_seconds,
            use_spot=self.use_spot,
            max_wait=self.max_wait,
            checkpoint_uri=f"{self.output_path}/{spec.name}/checkpoints",
            hyperparameters=hyperparameters,
            environment=dict(spec.environment),
            metric_definitions=[
                {"Name": d.name, "Regex": d.regex} for d in spec.metric_definitions
            ],
            tags={"mlcicd:pipeline": self.settings.prefix},
            kms_key_id=self.settings.kms_key_id,
            network_isolation=self.settings.network_isolation,
            vpc_config=self.settings.vpc_config,
            inter_container_encryption=self.settings.inter_container_encryption,
            checkpoints=self.checkpoints,
        )

    def _wait(
        self,
        spec: TrainingJobSpec,
        sagemaker: AwsClient,
        log: JobLog,
        series: list[tuple[str, float, float]],
    ) -> dict[str, Any]:
        interval = poll_seconds(self.settings.poll_seconds)
        tail = CloudWatchTail(client("logs"), TRAINING_JOBS_LOG_GROUP, spec.name)
        seen = 0
        while True:
            time.sleep(interval)
            described: dict[str, Any] = sagemaker.describe_training_job(TrainingJobName=spec.name)
            transitions = status_transitions(described)
            for status, message in transitions[seen:]:
                log(f"[{spec.name}] {status}: {message}".rstrip(": "))
            seen = len(transitions)
            self._log_lines(tail, spec, log, series)
            if described["TrainingJobStatus"] in TERMINAL_STATUSES:
                self._log_lines(tail, spec, log, series)  # what was written while it ended
                log(
                    f"[{spec.name}] {described['TrainingJobStatus']} "
                    f"({described.get('SecondaryStatus')})"
                )
                return described

    @staticmethod
    def _log_lines(
        tail: CloudWatchTail,
        spec: TrainingJobSpec,
        log: JobLog,
        series: list[tuple[str, float, float]],
    ) -> None:
        for line in tail.lines():
            log(line)
            now = time.time()
            series.extend(
                (name, value, now) for name, value in parse_metrics(line, spec.metric_definitions)
            )

    @staticmethod
    def _stop(sagemaker: AwsClient, name: str, log: JobLog) -> None:
        log(f"interrupted: stopping training job {name}")
        try:
            sagemaker.stop_training_job(TrainingJobName=name)
        except AwsError as exc:  # the interrupt matters more: say so, and let it through
            log(f"could not stop training job {name}: {exc.headline}")

    def _result(
        self,
        spec: TrainingJobSpec,
        job_dir: Path,
        described: dict[str, Any],
        log: JobLog,
        series: list[tuple[str, float, float]],
    ) -> TrainingJobResult:
        status: TrainingJobStatus = described["TrainingJobStatus"]
        secondary = str(described.get("SecondaryStatus", status))
        reason = None if status == "Completed" else failure_reason(described)
        metrics: dict[str, float] = {}
        artifact: Path | None = None
        sha256: str | None = None
        if status == "Completed":
            try:
                metrics = final_metrics(client("s3"), described)
            except ValueError as exc:
                status, secondary, reason = "Failed", "Failed", f"ClientError: {exc}"
        if status == "Completed":
            uri = model_uri(described)
            try:
                ref = self.settings.store.download(uri, job_dir / "output" / "model.tar.gz")
            except ArtifactError as exc:
                raise ArtifactError(
                    f"training job {spec.name} completed, but its model is missing: {exc.message}",
                    hint="look for it in the S3 console; SageMaker writes it before Completed",
                ) from exc
            artifact, sha256 = job_dir / "output" / "model.tar.gz", ref.sha256
            log(f"model {uri} downloaded, sha256 {sha256[:12]}")
        else:
            metrics = metric_list(described)
        return TrainingJobResult(
            name=spec.name,
            status=status,
            secondary_status=secondary,
            failure_reason=reason,
            metrics=metrics,
            metric_series=series,
            model_artifact=artifact,
            model_sha256=sha256,
            exit_code=None,  # SageMaker does not report the script's exit code
            started_at=epoch(described.get("TrainingStartTime") or described.get("CreationTime")),
            ended_at=epoch(described.get("TrainingEndTime")) or time.time(),
            log_path=log.path,
            job_dir=job_dir,
        )


__all__ = ["SageMakerTrainingBackend"]
