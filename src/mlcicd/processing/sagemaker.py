"""The SageMaker processing backend (a step's ``backend: sagemaker``): the same processing job,
run by SageMaker from this machine.

``run`` does what the SageMaker Python SDK's ScriptProcessor does: it uploads the step's
``source_dir`` and each input to the S3 artifact store, starts the job with the image, role
and instances configured (the script as ``python3 /opt/ml/processing/input/code/<entry>``,
network-isolated unless the step says otherwise, output and volume encrypted with
``train.kms_key``, in the VPC ``network:`` names), then polls DescribeProcessingJob, passing
on each line of the job's CloudWatch log (``/aws/sagemaker/ProcessingJobs``), until the job
ends. Each output SageMaker uploaded is then downloaded into the job's local directory and
packed, so the stage stores it exactly as a local job's.

Every key SageMaker's output holds is checked before a file is written for it: a key that is
absolute, empty or climbs out with ``..`` fails the job (an S3 key may hold any of them).

Layout in the store (bucket ``store.artifacts_bucket``, prefix the pipeline)::

    <pipeline>/processing/<job>/input/code/…      the step's source_dir
    <pipeline>/processing/<job>/input/<name>/…    each input
    <pipeline>/processing/<job>/output/<name>/…   what SageMaker uploaded of each output
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from mlcicd.archive import pack_dir
from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.joblogs import CloudWatchTail, JobLog, OnLog, epoch
from mlcicd.aws.jobsettings import SageMakerJobSettings
from mlcicd.aws.names import poll_seconds
from mlcicd.aws.processing_jobs import (
    CODE_INPUT,
    PROCESSING_JOBS_LOG_GROUP,
    TERMINAL_STATUSES,
    create_processing_job_request,
    failure_reason,
    output_uris,
    start_processing_job,
)
from mlcicd.config import Config, ProcessingStepConfig
from mlcicd.errors import ArtifactError, AwsError, ProcessingError
from mlcicd.fsutil import atomic_write_json
from mlcicd.processing.base import (
    OutputArtifact,
    ProcessingJobResult,
    ProcessingJobSpec,
    ProcessingJobStatus,
    ProcessingPaths,
    exit_message,
)
from mlcicd.store.base import ArtifactStore

_NOT_UPLOADED = ("__pycache__", ".git")


class SageMakerProcessingBackend:
    TYPE: ClassVar[str] = "sagemaker"

    def __init__(self, jobs_root: Path, settings: SageMakerJobSettings) -> None:
        self.jobs_root = jobs_root
        self.settings = settings

    @classmethod
    def from_config(
        cls, config: Config, step: ProcessingStepConfig, store: ArtifactStore, jobs_root: Path
    ) -> SageMakerProcessingBackend:
        settings = SageMakerJobSettings.from_config(
            config,
            store,
            jobs="a processing job",
            bucket=config.store.artifacts_bucket,
            prefix=f"{config.pipeline}/processing",
            image=step.image or config.train.image,
            role_arn=config.train.role,
            instance_type=step.instance_type,
            instance_count=step.instance_count,
            network_isolation=step.network_isolation,
            kms_key_id=config.train.kms_key,
            image_key=f"processing.{step.name}.image",
        )
        return cls(jobs_root, settings)

    def run(self, spec: ProcessingJobSpec, *, on_log: OnLog | None = None) -> ProcessingJobResult:
        entry = spec.source_dir / spec.entry_point
        if not entry.is_file():
            raise ProcessingError(
                f"entry point {entry} does not exist",
                hint="check the step's source_dir and entry_point",
            )
        paths = ProcessingPaths(self.jobs_root / spec.name)
        log = JobLog(paths.base / "logs" / "processing.log", on_log)
        try:
            return self._run(spec, paths, log)
        finally:
            log.close()

    def _run(
        self, spec: ProcessingJobSpec, paths: ProcessingPaths, log: JobLog
    ) -> ProcessingJobResult:
        base = f"{self.settings.prefix}/{spec.name}"
        code = self._upload(spec.source_dir, f"{base}/input/{CODE_INPUT}")
        inputs = {i.name: self._upload(i.source, f"{base}/input/{i.name}") for i in spec.inputs}
        log(f"code and {len(inputs)} input(s) uploaded under {self.settings.uri(base)}")
        request = create_processing_job_request(
            name=spec.name,
            image=self.settings.image,
            role_arn=self.settings.role_arn,
            code_uri=code,
            entry_point=spec.entry_point,
            inputs=inputs,
            outputs={n: self.settings.uri(f"{base}/output/{n}") for n in spec.outputs},
            arguments=spec.arguments,
            environment=spec.environment,
            instance_type=self.settings.instance_type,
            instance_count=self.settings.instance_count,
            max_runtime=spec.max_runtime_seconds,
            network_isolation=self.settings.network_isolation,
            kms_key_id=self.settings.kms_key_id,
            tags={"mlcicd:pipeline": self.settings.prefix.split("/", 1)[0]},
            vpc_config=self.settings.vpc_config,
            inter_container_encryption=self.settings.inter_container_encryption,
        )
        sagemaker = client("sagemaker")
        start_processing_job(sagemaker, request)
        log(
            f"processing job {spec.name} created on {self.settings.instance_count} x "
            f"{self.settings.instance_type}"
        )
        try:
            described = self._wait(spec.name, sagemaker, log)
        except KeyboardInterrupt:
            log(f"interrupted: stopping processing job {spec.name}")
            try:
                sagemaker.stop_processing_job(ProcessingJobName=spec.name)
            except AwsError as exc:  # the interrupt matters more: say so, and let it through
                log(f"could not stop processing job {spec.name}: {exc.headline}")
            raise
        atomic_write_json(paths.base / "description.json", described)
        status: ProcessingJobStatus = described["ProcessingJobStatus"]
        reason = None if status == "Completed" else failure_reason(described)
        outputs: dict[str, OutputArtifact] = {}
        if status == "Completed":
            try:
                outputs = self._download(spec, paths, output_uris(described), log)
            except ArtifactError as exc:
                status, reason, outputs = "Failed", f"ClientError: {exc.message}", {}
        message = described.get("ExitMessage")
        return ProcessingJobResult(
            name=spec.name,
            status=status,
            failure_reason=reason,
            exit_message=exit_message(str(message)) if message else None,
            exit_code=None,  # SageMaker does not report the script's exit code
            outputs=outputs,
            started_at=epoch(described.get("ProcessingStartTime") or described.get("CreationTime")),
            ended_at=epoch(described.get("ProcessingEndTime")) or time.time(),
            log_path=log.path,
            job_dir=paths.base,
        )

    def _upload(self, source: Path, key: str) -> str:
        """``source`` (a directory's files, or one file) under ``key``; its S3 prefix."""
        files = (
            [source]
            if source.is_file()
            else sorted(
                p
                for p in source.rglob("*")
                if p.is_file() and not set(_NOT_UPLOADED) & set(p.relative_to(source).parts)
            )
        )
        for path in files:
            rel = path.name if path == source else path.relative_to(source).as_posix()
            self.settings.store.put_file(path, self.settings.bucket, f"{key}/{rel}")
        return self.settings.uri(key) + "/"

    def _wait(self, name: str, sagemaker: AwsClient, log: JobLog) -> dict[str, Any]:
        interval = poll_seconds(self.settings.poll_seconds)
        tail = CloudWatchTail(client("logs"), PROCESSING_JOBS_LOG_GROUP, name)
        while True:
            time.sleep(interval)
            described: dict[str, Any] = sagemaker.describe_processing_job(ProcessingJobName=name)
            for line in tail.lines():
                log(line)
            if described["ProcessingJobStatus"] in TERMINAL_STATUSES:
                for line in tail.lines():  # what was written while it ended
                    log(line)
                log(f"[{name}] {described['ProcessingJobStatus']}")
                return described

    def _download(
        self,
        spec: ProcessingJobSpec,
        paths: ProcessingPaths,
        uploaded: dict[str, str],
        log: JobLog,
    ) -> dict[str, OutputArtifact]:
        outputs: dict[str, OutputArtifact] = {}
        for name in spec.outputs:
            prefix = uploaded.get(name, "").rstrip("/") + "/"
            directory = paths.output(name)
            directory.mkdir(parents=True, exist_ok=True)
            key = f"{self.settings.prefix}/{spec.name}/output/{name}"
            for uri in self.settings.store.list_uris(self.settings.bucket, key):
                rel = PurePosixPath(uri.removeprefix(prefix))
                if (
                    not uri.startswith(prefix)
                    or rel.is_absolute()
                    or any(part in ("", ".", "..") for part in uri.removeprefix(prefix).split("/"))
                ):
                    raise ArtifactError(
                        f"output {name!r}: SageMaker uploaded {uri}, which is not a file inside "
                        f"{prefix}"
                    )
                self.settings.store.download(uri, directory / Path(*rel.parts))
            archive = paths.base / "outputs" / f"{name}.tar.gz"
            outputs[name] = OutputArtifact(name, directory, archive, pack_dir(directory, archive))
            log(f"output {name} downloaded from {prefix}")
        return outputs


__all__ = ["SageMakerProcessingBackend"]
