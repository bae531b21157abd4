"""Which pipeline execution started a job: checked on each continuation of the Train action
before any job the token names is followed.

The Train action keeps its progress in the continuation token, and CodePipeline hands the
token back as it was put: whoever can call ``codepipeline:PutJobSuccessResult`` for the
action's job could put one of their own, naming another pipeline's training job (a model
trained on other data) or a processing job whose "report" passes the gate. The token is not
signed — a signature needs a secret the function keeps, and this needs none: every job the
function starts is tagged with the pipeline and with this execution's id, and the id is not
in the token but derived from the event — the input artifacts' locations, which CodePipeline
names anew for each execution and gives each continuation as it gave the first invocation. A
token naming a job without both tags fails the action before anything is read or registered.
A step reused from an earlier run (its cache key's job) carries an earlier execution's id: it
must carry this pipeline's and this step's tags, and be the job this execution recorded
reusing (:func:`reuse_record`) — any earlier run's job of the step has those tags. The
Deploy action's token names an endpoint and an EndpointConfig: the endpoint must be the
action's, the config tagged with this pipeline and the model package of the execution's
model.json (:func:`check_deploy_token`).

The token carries more than job names. What the event gives as well — the image the build
pushed, the commit — must be the event's (:func:`check_event_values`): a token's own image
would be trained on, run as a step and registered. And the outcomes the function decides
within one invocation and never hands over (the explainer's report, its failure), or only
once training has started (the data check's), are refused in a token: with them a caller
would skip the data check, or give the endpoint an explanation report of their choosing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from mlcicd.aws.clients import client, is_not_found
from mlcicd.aws.codepipeline import PipelineJob
from mlcicd.aws.joboutputs import job_run, written_once
from mlcicd.aws.processing_jobs import describe_processing_job
from mlcicd.aws.training_jobs import describe_training_job, model_uri
from mlcicd.errors import ArtifactError, AwsError
from mlcicd.store.s3 import parse_s3_uri

PIPELINE_TAG = "mlcicd:pipeline"
EXECUTION_TAG = "mlcicd:execution"
STEP_TAG = "mlcicd:step"
PACKAGE_TAG = "mlcicd:model-package"  # the Deploy action's EndpointConfig: the model it serves


def execution_id(job: PipelineJob) -> str:
    """This execution's id: the input artifacts' locations, hashed — the same for the first
    invocation and each continuation, and never the token's to say."""
    places = sorted(f"{a.bucket}/{a.key}" for a in job.inputs)
    return hashlib.sha256("\n".join(places).encode()).hexdigest()[:16]


def reuse_record(pipeline: str, execution: str, step: str) -> str:
    """The key (in the models bucket) where ``execution`` records the earlier job it reuses
    for ``step``: written by the function when its cache key finds the job, never by a token."""
    return f"{pipeline}/processing/reused/{execution}/{step}.json"


def check_token(pipeline: str, execution: str, state: Mapping[str, Any], bucket: str) -> None:
    """Each job ``state`` (a continuation token) names was started by this pipeline's
    ``execution`` — a reused step's, by this pipeline for that step, and recorded in
    ``bucket`` as this execution's reuse (:func:`reuse_record`); MlcicdError naming the first
    that was not."""
    outcomes = [key for key in _DECIDED_IN_ONE_INVOCATION if key in state]
    if "checked" in state and not state.get("job"):  # the check passed: training started
        outcomes.append("checked")
    if outcomes:
        raise ArtifactError(
            f"the continuation token says {', '.join(outcomes)}, which the action decides "
            "itself and never hands over in a token: the action stops here, nothing is "
            "registered",
            hint=_HINT,
        )
    wanted = {PIPELINE_TAG: pipeline, EXECUTION_TAG: execution}
    if state.get("job"):
        trained = _check(str(state["job"]), "training", wanted)
        model = state.get("model")
        if isinstance(model, Mapping) and model.get("uri") != model_uri(trained):
            raise ArtifactError(
                f"the continuation token names the model {model.get('uri')}, not the one "
                f"training job {state['job']} wrote ({model_uri(trained)}): the action stops "
                "here, nothing is registered",
                hint=_HINT,
            )
        if isinstance(model, Mapping):
            # Still the one version the job wrote: the token's sha256 is then that version's
            # digest or one every reader refuses — not a replacement's, handed in with it.
            bucket, key = parse_s3_uri(str(model["uri"]))
            if written_once(client("s3"), bucket, key, job=job_run(trained)) is None:
                raise ArtifactError(
                    f"the model {model['uri']} training job {state['job']} wrote is gone: the "
                    "action stops here, nothing is registered",
                    hint="release the change again to train the model anew",
                )
    cached = set(state.get("cached") or [])
    for step, name in sorted((state.get("steps") or {}).items()):
        if step in cached:
            _check_reused(bucket, reuse_record(pipeline, execution, str(step)), str(name))
            _check(str(name), "processing", {PIPELINE_TAG: pipeline, STEP_TAG: str(step)})
        else:
            _check(str(name), "processing", {**wanted, STEP_TAG: str(step)})
    for key in ("check", "explain"):
        if state.get(key):
            step = "data_check" if key == "check" else key  # as start_own_job tags them
            _check(str(state[key]), "processing", {**wanted, STEP_TAG: step})


def check_event_values(state: Mapping[str, Any], event: Mapping[str, Callable[[], Any]]) -> None:
    """Each value ``state`` (a continuation token) carries that the event gives too — ``event``
    maps its key to how the event gives it — is the event's; ArtifactError naming the first
    that is not (an image of the caller's choosing would be trained on and registered)."""
    for key, value in event.items():
        if key in state and state[key] != (expected := value()):
            raise ArtifactError(
                f"the continuation token names {key} {state[key]!r}, not this execution's "
                f"({expected!r}): the action stops here, nothing is started or registered",
                hint=_HINT,
            )


def _check_reused(bucket: str, key: str, name: str) -> None:
    """Job ``name`` is the one this execution recorded reusing at ``key``: an earlier run's
    job of the same step carries the same tags, whatever data it ran on."""
    recorded = None
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        with body:
            recorded = json.loads(body.read(4096)).get("job")
    except AwsError as exc:
        if not is_not_found(exc) and exc.code != "NoSuchKey":
            raise
    except (ValueError, AttributeError, RecursionError):
        recorded = None
    if recorded != name:
        raise ArtifactError(
            f"the continuation token names processing job {name} as reused, which this "
            f"pipeline's execution did not reuse (s3://{bucket}/{key} names "
            f"{recorded or 'none'}): the action stops here, nothing is registered",
            hint=_HINT,
        )


def _check(name: str, kind: str, wanted: Mapping[str, str]) -> dict[str, Any]:
    sagemaker = client("sagemaker")
    if kind == "training":
        described = describe_training_job(sagemaker, name)
        arn = None if described is None else described["TrainingJobArn"]
    else:
        described = describe_processing_job(sagemaker, name)
        arn = None if described is None else described["ProcessingJobArn"]
    tags: dict[str, str] = {}
    if arn is not None:
        listed = sagemaker.list_tags(ResourceArn=arn).get("Tags") or []
        tags = {str(t["Key"]): str(t["Value"]) for t in listed if t["Key"] in wanted}
    if tags != dict(wanted):
        raise ArtifactError(
            f"the continuation token names {kind} job {name}, which this pipeline's execution "
            f"did not start (its tags {tags or 'none'}, expected {dict(wanted)}): the action "
            "stops here, nothing is registered",
            hint=_HINT,
        )
    assert described is not None  # the tags were found on it
    return described


# Set and used within one invocation (the explainer's outcome goes straight into model.json):
# never in a token the function hands over.
_DECIDED_IN_ONE_INVOCATION = ("explained", "explained_sha256", "explain_error")

_HINT = (
    "whoever can call codepipeline:PutJobSuccessResult handed the function a token of their "
    "own: find who in CloudTrail; then release the change again"
)


def check_deploy_token(
    pipeline: str, endpoint: str, model: Mapping[str, Any], state: Mapping[str, Any]
) -> None:
    """The Deploy action's token names this action's endpoint, and an EndpointConfig this
    pipeline made for ``model`` — model.json of this execution's input artifact, which the
    token cannot change — and the variants that config serves; ArtifactError otherwise. A
    config named by a forged token would otherwise be put on the endpoint (another
    pipeline's, or an older model's)."""
    package = str(model.get("model_package_arn"))
    config = str(state.get("config"))
    found: dict[str, str] = {}
    served: list[str] = []
    if state.get("endpoint") == endpoint and state.get("package") == package:
        sagemaker = client("sagemaker")
        try:
            described = sagemaker.describe_endpoint_config(EndpointConfigName=config)
        except AwsError as exc:
            if not is_not_found(exc):
                raise
        else:
            listed = sagemaker.list_tags(ResourceArn=described["EndpointConfigArn"]).get("Tags")
            found = {str(t["Key"]): str(t["Value"]) for t in listed or []}
            served = [str(v["VariantName"]) for v in described.get("ProductionVariants") or []]
    wanted = {PIPELINE_TAG: pipeline, PACKAGE_TAG: package[:256]}
    if {k: found.get(k) for k in wanted} != wanted:
        raise ArtifactError(
            f"the continuation token names endpoint {state.get('endpoint')} and endpoint config "
            f"{config}, which this action did not make for model {package} on endpoint "
            f"{endpoint}: the action stops here, the endpoint is not changed",
            hint=_HINT,
        )
    # The rollback alarms and autoscaling are put on the token's variants: other names would
    # leave the served ones unwatched, a bad deployment not rolled back.
    if state.get("variants") != served:
        raise ArtifactError(
            f"the continuation token names variants {state.get('variants')}, not those endpoint "
            f"config {config} serves ({served}): the action stops here, the endpoint is not "
            "changed",
            hint=_HINT,
        )


__all__ = [
    "EXECUTION_TAG",
    "PACKAGE_TAG",
    "PIPELINE_TAG",
    "check_deploy_token",
    "check_event_values",
    "check_token",
    "execution_id",
    "reuse_record",
]
