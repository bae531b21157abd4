"""Applying the stack: create or update it through a CloudFormation change set, delete it.

Generating the template is :mod:`mlcicd.aws.template`'s job; this module only applies one.
Both directions wait for CloudFormation to finish and pass each stack event to ``on_event``
as it arrives, so a terminal shows the resources being made or removed.

A stack's buckets must be empty before CloudFormation can delete them, and its image
repository must hold no images: :func:`destroy_stack` empties them only when told to
(``force``) — they hold every model and pipeline artifact — and otherwise refuses, naming
what is in the way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlcicd.aws.clients import AwsClient, client
from mlcicd.aws.package import LambdaPackage
from mlcicd.errors import AwsError, ConfigError, NotFoundError, StackError

Json = dict[str, Any]
CAPABILITIES = ("CAPABILITY_IAM",)
DEFAULT_POLL_SECONDS = 5.0
DEFAULT_TIMEOUT = (
    3 * 3600.0
)  # CloudFormation's own limit for most resources is far beyond a pipeline's
_NO_CHANGES = ("didn't contain changes", "no updates are to be performed")
_FAILED_TO_CREATE = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED")


@dataclass(frozen=True)
class StackEvent:
    timestamp: datetime | None
    logical_id: str
    resource_type: str
    status: str
    reason: str | None

    def __str__(self) -> str:
        when = self.timestamp.astimezone().strftime("%H:%M:%S") if self.timestamp else "--:--:--"
        line = f"{when}  {self.status:<32} {self.resource_type:<34} {self.logical_id}"
        return f"{line}  {self.reason}" if self.reason else line


@dataclass(frozen=True)
class StackResult:
    stack_id: str
    status: str
    changed: bool
    outputs: dict[str, str]
    first_values: tuple[str, ...] = ()  # the parameters set from ``first_values`` by this deploy


OnEvent = Callable[[StackEvent], None]


def describe_stack(cloudformation: AwsClient, stack: str) -> Json | None:
    """The stack (by name or id), or None if there is none (or it was deleted)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except AwsError as exc:
        if exc.code == "ValidationError" and "does not exist" in exc.aws_message:
            return None
        raise
    found: Json | None = stacks[0] if stacks else None
    if found is not None and found.get("StackStatus") == "DELETE_COMPLETE":
        return None
    return found


class _EventTail:
    """The stack's events not yet seen, oldest first."""

    def __init__(self, cloudformation: AwsClient, stack_id: str) -> None:
        self.cloudformation = cloudformation
        self.stack_id = stack_id
        self.seen: set[str] = set()
        self.failures: list[StackEvent] = []  # with a reason, in the order they happened

    def skip_existing(self) -> None:
        self.new()
        self.failures.clear()

    def new(self) -> list[StackEvent]:
        fresh: list[Json] = []
        for page in self.cloudformation.paginate("describe_stack_events", StackName=self.stack_id):
            events = page.get("StackEvents", [])
            unseen = [e for e in events if e["EventId"] not in self.seen]
            fresh.extend(unseen)
            if len(unseen) < len(events):  # newest first: the rest were seen before
                break
        self.seen.update(e["EventId"] for e in fresh)
        events = [
            StackEvent(
                timestamp=e.get("Timestamp"),
                logical_id=e.get("LogicalResourceId", ""),
                resource_type=e.get("ResourceType", ""),
                status=e.get("ResourceStatus", ""),
                reason=e.get("ResourceStatusReason"),
            )
            for e in reversed(fresh)
        ]
        self.failures += [e for e in events if e.status.endswith("_FAILED") and e.reason]
        return events


def _parameters(
    template: Json, given: Mapping[str, str], existing: Json | None, first_values: Mapping[str, str]
) -> tuple[list[Json], list[str]]:
    """The change set's parameters, and the names of ``first_values`` used (those neither
    given nor set by an earlier deploy)."""
    declared = set(template.get("Parameters", {}))
    unknown = sorted(set(given) - declared)
    if unknown:
        raise ConfigError(
            f"the template has no parameter {', '.join(unknown)}",
            path="--parameter",
            hint=f"its parameters: {', '.join(sorted(declared))}",
        )
    parameters: list[Json] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(given.items())
    ]
    previous: set[str] = set()
    if existing is not None:  # keep what the last deploy set (the GitHub token among them)
        previous = {p["ParameterKey"] for p in existing.get("Parameters", [])}
        parameters += [
            {"ParameterKey": k, "UsePreviousValue": True}
            for k in sorted((previous & declared) - set(given))
        ]
    first = sorted((set(first_values) & declared) - set(given) - previous)
    parameters += [{"ParameterKey": k, "ParameterValue": first_values[k]} for k in first]
    return parameters, first


def deploy_stack(
    stack_name: str,
    template_body: str,
    template: Json,
    parameters: Mapping[str, str],
    *,
    on_event: OnEvent | None = None,
    tags: Mapping[str, str] | None = None,
    first_values: Mapping[str, str] | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout: float = DEFAULT_TIMEOUT,
    template_url: str | None = None,
) -> StackResult:
    """Create or update ``stack_name`` to ``template_body`` through a change set; wait.
    With ``template_url`` (the same template on S3: :func:`upload_template`), CloudFormation
    reads it from there instead — past its inline limit, it reads no other way.

    ``template`` is the same template as plain data (for its parameter names). Parameters
    not given keep their previous values on an update. ``first_values`` are for parameters
    neither given nor set before (a generated secret: made once, then kept by CloudFormation,
    never shown). Raises ``StackError`` when the change set or the stack fails, with
    CloudFormation's reasons.
    """
    cloudformation = client("cloudformation")
    existing = describe_stack(cloudformation, stack_name)
    if existing is not None:
        status = existing["StackStatus"]
        if status in _FAILED_TO_CREATE:
            raise StackError(
                f"stack {stack_name} is {status}: it was never created, and cannot be updated",
                code=status,
                hint=f"remove it with `mlcicd aws destroy --stack-name {stack_name}` "
                "and deploy again",
            )
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise StackError(
                f"stack {stack_name} is {status}: another change is under way",
                code=status,
                hint="wait for it to finish, then deploy again",
            )
    creating = existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS"
    change_set = f"mlcicd-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    change_parameters, first = _parameters(
        template, parameters, None if creating else existing, first_values or {}
    )
    request: Json = {
        "StackName": stack_name,
        "ChangeSetName": change_set,
        "ChangeSetType": "CREATE" if creating else "UPDATE",
        **({"TemplateURL": template_url} if template_url else {"TemplateBody": template_body}),
        "Parameters": change_parameters,
        "Capabilities": list(CAPABILITIES),
        "Description": "mlcicd aws deploy",
    }
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    try:
        created = cloudformation.create_change_set(**request)
    except AwsError as exc:
        if any(words in exc.aws_message.lower() for words in _NO_CHANGES):
            assert existing is not None
            return StackResult(
                existing["StackId"], existing["StackStatus"], False, _outputs(existing)
            )
        raise
    stack_id = str(created["StackId"])
    deadline = time.monotonic() + timeout
    while True:
        described = cloudformation.describe_change_set(StackName=stack_id, ChangeSetName=change_set)
        if described["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            break
        _sleep(deadline, poll_seconds, f"change set {change_set}")
    if described["Status"] == "FAILED":
        reason = str(described.get("StatusReason") or "")
        if any(words in reason.lower() for words in _NO_CHANGES):
            cloudformation.delete_change_set(StackName=stack_id, ChangeSetName=change_set)
            now = describe_stack(cloudformation, stack_id) or {"StackStatus": "?"}
            return StackResult(stack_id, now["StackStatus"], False, _outputs(now))
        raise StackError(
            f"CloudFormation refused the change set for {stack_name}: {reason}",
            code="FAILED",
            aws_message=reason,
        )
    tail = _EventTail(cloudformation, stack_id)
    tail.skip_existing()
    cloudformation.execute_change_set(StackName=stack_id, ChangeSetName=change_set)
    final = _wait(cloudformation, stack_id, tail, on_event, deadline, poll_seconds)
    status = final["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(
            f"stack {stack_name} is {status}: {_failures(tail) or 'see its events'}",
            code=status,
            hint="CloudFormation rolled the change back; the console shows every event",
        )
    return StackResult(stack_id, status, True, _outputs(final), tuple(first))


def _wait(
    cloudformation: AwsClient,
    stack_id: str,
    tail: _EventTail,
    on_event: OnEvent | None,
    deadline: float,
    poll_seconds: float,
) -> Json:
    while True:
        described = describe_stack(cloudformation, stack_id)
        for event in tail.new():
            if on_event is not None:
                on_event(event)
        if described is None:
            return {"StackId": stack_id, "StackStatus": "DELETE_COMPLETE"}
        if not described["StackStatus"].endswith("_IN_PROGRESS"):
            return described
        _sleep(deadline, poll_seconds, f"stack {described['StackName']}")


def _failures(tail: _EventTail) -> str:
    return "; ".join(f"{e.logical_id}: {e.reason}" for e in tail.failures[:3])


def stack_outputs(stack: str) -> dict[str, str]:
    """The outputs of the stack named ``stack`` (``mlcicd aws deploy``'s), by key."""
    found = describe_stack(client("cloudformation"), stack)
    if found is None:
        raise NotFoundError(
            f"stack {stack} does not exist (in this account and region)",
            hint="create it with `mlcicd aws deploy`, or check --stack-name, AWS_PROFILE and "
            "AWS_REGION",
        )
    return _outputs(found)


def _outputs(stack: Json) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _sleep(deadline: float, seconds: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise StackError(
            f"gave up waiting for {what}",
            code="Timeout",
            hint="CloudFormation goes on: see the stack in the console",
        )
    time.sleep(seconds)


# --- destroy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    """What would stop CloudFormation from deleting a bucket or a repository."""

    kind: str  # "bucket" or "repository"
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def stack_storage(cloudformation: AwsClient, stack: str) -> list[Contents]:
    storage = []
    for page in cloudformation.paginate("list_stack_resources", StackName=stack):
        for resource in page.get("StackResourceSummaries", []):
            physical = resource.get("PhysicalResourceId")
            if not physical or resource.get("ResourceStatus") == "DELETE_COMPLETE":
                continue
            if resource["ResourceType"] == "AWS::S3::Bucket":
                storage.append(Contents("bucket", physical))
            elif resource["ResourceType"] == "AWS::ECR::Repository":
                storage.append(Contents("repository", physical))
    return storage


def _object_versions(s3: AwsClient, bucket: str) -> Iterator[list[Json]]:
    """Every version and delete marker of ``bucket``, a page (at most 1000) at a time."""
    try:
        for page in s3.paginate("list_object_versions", Bucket=bucket):
            batch = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if batch:
                yield batch
    except AwsError as exc:
        if exc.code != "NoSuchBucket":
            raise


def _images(ecr: AwsClient, repository: str) -> Iterator[list[Json]]:
    try:
        for page in ecr.paginate("list_images", repositoryName=repository):
            if page.get("imageIds"):
                yield page["imageIds"]
    except AwsError as exc:
        if exc.code != "RepositoryNotFoundException":
            raise


def is_empty(item: Contents) -> bool:
    pages = (
        _object_versions(client("s3"), item.name)
        if item.kind == "bucket"
        else _images(client("ecr"), item.name)
    )
    return next(pages, None) is None


def empty(item: Contents) -> int:
    """Delete every object version (or image) in ``item``; return how many."""
    removed = 0
    if item.kind == "bucket":
        s3 = client("s3")
        while True:  # listing again after each delete: a page is gone once deleted
            batch = next(_object_versions(s3, item.name), None)
            if not batch:
                return removed
            answer = s3.delete_objects(Bucket=item.name, Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise StackError(
                    f"cannot empty bucket {item.name}: {first.get('Key')}: {first.get('Message')}",
                    code=str(first.get("Code")),
                )
            removed += len(batch)
    ecr = client("ecr")
    for page in list(_images(ecr, item.name)):
        for start in range(0, len(page), 100):
            ecr.batch_delete_image(repositoryName=item.name, imageIds=page[start : start + 100])
            removed += len(page[start : start + 100])
    return removed


def destroy_stack(
    stack_name: str,
    *,
    force: bool = False,
    on_event: OnEvent | None = None,
    on_message: Callable[[str], None] | None = None,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    timeout: float = DEFAULT_TIMEOUT,
) -> StackResult:
    """Delete the stack; with ``force``, empty its buckets and image repository first."""
    cloudformation = client("cloudformation")
    existing = describe_stack(cloudformation, stack_name)
    if existing is None:
        raise NotFoundError(
            f"stack {stack_name} does not exist (in this account and region)",
            hint="check --stack-name and AWS_REGION",
        )
    stack_id = str(existing["StackId"])
    storage = stack_storage(cloudformation, stack_id)
    full = [item for item in storage if not is_empty(item)]
    if full and not force:
        raise StackError(
            f"stack {stack_name} still holds data: {', '.join(str(i) for i in full)} "
            "(CloudFormation cannot delete a bucket or repository that is not empty)",
            code="NotEmpty",
            hint="copy out what you want to keep, then run again with --force to delete every "
            "object "
            "version and image in them",
        )
    for item in full:
        removed = empty(item)
        if on_message is not None:
            on_message(f"emptied {item}: {removed} object version(s) or image(s) deleted")
    tail = _EventTail(cloudformation, stack_id)
    tail.skip_existing()
    cloudformation.delete_stack(StackName=stack_id)
    final = _wait(
        cloudformation, stack_id, tail, on_event, time.monotonic() + timeout, poll_seconds
    )
    if final["StackStatus"] != "DELETE_COMPLETE":
        raise StackError(
            f"stack {stack_name} is {final['StackStatus']}: {_failures(tail) or 'see its events'}",
            code=final["StackStatus"],
        )
    return StackResult(stack_id, "DELETE_COMPLETE", True, {})


# --- the Lambda code ---------------------------------------------------------------------------


def default_code_bucket() -> str:
    """``mlcicd-lambda-code-<account>-<region>``: one per account and region, like CDK's."""
    sts = client("sts")
    account = sts.get_caller_identity()["Account"]
    region = client("s3").meta.region_name or "us-east-1"
    return f"mlcicd-lambda-code-{account}-{region}"


def upload_lambda_package(package: LambdaPackage, bucket: str) -> str:
    """Put the package in ``bucket`` (created, private, if missing) under its digest; return
    the key."""
    s3 = client("s3")
    owner = _ensure_bucket(s3, bucket)
    try:
        s3.head_object(Bucket=bucket, Key=package.key, ExpectedBucketOwner=owner)
    except AwsError as exc:
        if exc.code not in ("404", "NoSuchKey", "NotFound"):
            raise
        s3.upload_file(
            str(package.path),
            bucket,
            package.key,
            ExtraArgs={
                "Metadata": {"sha256": package.sha256},
                "ChecksumAlgorithm": "SHA256",
                "ExpectedBucketOwner": owner,
            },
        )
    return package.key


def upload_template(body: str, bucket: str) -> str:
    """Put a template CloudFormation cannot take inline (past ``TEMPLATE_BODY_LIMIT``) in
    ``bucket`` (created, private, if missing) under its digest; return its URL, for
    TemplateURL."""
    s3 = client("s3")
    owner = _ensure_bucket(s3, bucket)
    data = body.encode("utf-8")
    key = f"mlcicd/templates/{hashlib.sha256(data).hexdigest()}.json"
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="application/json",
        ExpectedBucketOwner=owner,
    )
    region = s3.meta.region_name or "us-east-1"
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{bucket}.s3.{region}.{domain}/{key}"


def _ensure_bucket(s3: AwsClient, bucket: str) -> str:
    """``bucket``, created private if missing; the caller's account, which owns it.

    Bucket names are global and the default one (``mlcicd-lambda-code-<account>-<region>``)
    is guessable: anyone could create it first and let us write to it, then swap the Lambda
    code or the template between our upload and CloudFormation's read. Every call on it says
    whose it must be (``ExpectedBucketOwner``), so S3 refuses (403) a bucket of another
    account instead of taking our code."""
    owner = str(client("sts").get_caller_identity()["Account"])
    try:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    except AwsError as exc:
        if exc.code in ("403", "AccessDenied"):
            raise AwsError(
                f"the code bucket {bucket} is not this account's ({owner}), or you may not "
                "read it: not uploading the Lambda code or the template to it",
                code=exc.code,
                aws_message=exc.aws_message,
                operation=exc.operation,
                hint="pass --code-bucket with a bucket of this account (or the "
                "LambdaCodeBucket parameter)",
            ) from exc
        if exc.code not in ("404", "NoSuchBucket", "NotFound"):
            raise
        region = s3.meta.region_name or "us-east-1"
        create: Json = {"Bucket": bucket}
        if region != "us-east-1":  # S3's oldest region takes no location constraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
        s3.put_public_access_block(
            Bucket=bucket,
            ExpectedBucketOwner=owner,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    return owner


__all__ = [
    "StackEvent",
    "StackResult",
    "default_code_bucket",
    "deploy_stack",
    "describe_stack",
    "destroy_stack",
    "upload_lambda_package",
    "upload_template",
]
