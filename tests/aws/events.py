"""CodePipeline jobs as a Lambda invoke action receives them, and their artifacts in S3.

The event's shape is AWS's "Example JSON event" of the Lambda invoke action (CodePipeline
user guide): ``CodePipeline.job`` with ``id``, ``accountId`` and ``data`` holding
``actionConfiguration``, ``inputArtifacts``/``outputArtifacts`` (S3 locations),
``artifactCredentials``, ``encryptionKey`` and, when re-invoked, ``continuationToken``.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

ACCOUNT = "123456789012"
ARTIFACTS_BUCKET = "ml-cicd-pipeline-artifacts-123456789012-us-east-1"
MODELS_BUCKET = "ml-cicd-pipeline-models-123456789012-us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ml-cicd-pipeline-SageMakerExecutionRole-ABC"
ENDPOINT_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ml-cicd-pipeline-EndpointExecutionRole-DEF"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/ml-model-repo:0123456789ab"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def create_models_bucket(s3: Any) -> None:
    """The stack's models bucket, versioned as the template makes it (the Lambdas read a job's
    output only as the one version the job wrote: mlcicd.aws.joboutputs)."""
    s3.create_bucket(Bucket=MODELS_BUCKET)
    s3.put_bucket_versioning(Bucket=MODELS_BUCKET, VersioningConfiguration={"Status": "Enabled"})


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def artifact(name: str, key: str, revision: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "revision": revision,
        "location": {
            "type": "S3",
            "s3Location": {"bucketName": ARTIFACTS_BUCKET, "objectKey": key},
        },
    }


def job_event(
    job_id: str,
    *,
    function: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]] | None = None,
    continuation: str | None = None,
    user_parameters: str | None = None,
) -> dict[str, Any]:
    configuration = {"FunctionName": function}
    if user_parameters is not None:
        configuration["UserParameters"] = user_parameters
    data: dict[str, Any] = {
        "actionConfiguration": {"configuration": configuration},
        "inputArtifacts": inputs,
        "outputArtifacts": outputs or [],
        "artifactCredentials": {
            "accessKeyId": "ASIAEXAMPLEARTIFACTS",
            "secretAccessKey": "artifact-secret",
            "sessionToken": "artifact-session-token",
        },
        "encryptionKey": {
            "id": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "type": "KMS",
        },
    }
    if continuation is not None:
        data["continuationToken"] = continuation
    return {"CodePipeline.job": {"id": job_id, "accountId": ACCOUNT, "data": data}}


def lambda_environment(
    template: dict[str, Any], function: str, *, conditions: dict[str, bool] | None = None
) -> dict[str, str]:
    """The function's environment as the stack sets it, CloudFormation's values filled in
    (conditions false unless named true in ``conditions``; ``Fn::Sub`` of the buckets)."""
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    filled = {
        "ModelsBucket": MODELS_BUCKET,
        "ArtifactsBucket": ARTIFACTS_BUCKET,
        "SageMakerExecutionRole": ROLE_ARN,
        "EndpointExecutionRole": ENDPOINT_ROLE_ARN,
        "EncryptionKey": KEY_ARN,
    }
    environment = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            value = when_true if (conditions or {}).get(condition, False) else when_false
        if isinstance(value, dict) and "Fn::Sub" in value:
            value = value["Fn::Sub"]
            for target, filled_in in filled.items():
                value = value.replace(f"${{{target}}}", filled_in)
            assert "${" not in value, value
        if isinstance(value, str):
            environment[name] = value
        else:
            ((_, target),) = value.items()  # {"Ref": X} or {"Fn::GetAtt": [X, "Arn"]}
            environment[name] = filled[target if isinstance(target, str) else target[0]]
    return environment


def token_of(call: tuple[str, dict[str, Any]]) -> str:
    name, params = call
    assert name == "PutJobSuccessResult", call
    token = params.get("continuationToken")
    assert token, f"no continuation token: {params}"
    json.loads(token)
    return str(token)
