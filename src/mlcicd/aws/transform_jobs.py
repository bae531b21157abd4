"""SageMaker batch transform jobs as ``transform.backend: sagemaker`` starts and reads them:
one CreateTransformJob request as plain data, one reading of how a job ended."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlcicd.aws.clients import AwsClient
from mlcicd.aws.hosting import described_or_none, tag_list

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")


def create_transform_job_request(
    *,
    name: str,
    model_name: str,
    settings: Mapping[str, Any],
    input_uri: str,
    output_uri: str,
    instance_type: str,
    instance_count: int = 1,
    environment: Mapping[str, str] | None = None,
    kms_key_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CreateTransformJob's parameters from a job's settings (``TransformSettings.to_dict``:
    the local job's fields, under SageMaker's names)."""
    output: dict[str, Any] = {
        "S3OutputPath": output_uri,
        "Accept": settings.get("accept") or settings["content_type"],
        "AssembleWith": settings["assemble_with"],
    }
    if kms_key_id:
        output["KmsKeyId"] = kms_key_id
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": model_name,
        "MaxConcurrentTransforms": int(settings["max_concurrent"]),
        "MaxPayloadInMB": max(1, math.ceil(float(settings["max_payload_mb"]))),
        "BatchStrategy": settings["batch_strategy"],
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": settings["content_type"],
            "CompressionType": settings["compression"],
            "SplitType": settings["split_type"],
        },
        "TransformOutput": output,
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
    }
    processing = {
        "InputFilter": settings["input_filter"],
        "JoinSource": settings["join_source"],
        "OutputFilter": settings["output_filter"],
    }
    if processing != {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$"}:
        request["DataProcessing"] = processing
    if environment:
        request["Environment"] = dict(environment)
    if tags:
        request["Tags"] = tag_list(tags)
    return request


def describe_transform_job(sagemaker: AwsClient, name: str) -> dict[str, Any] | None:
    """DescribeTransformJob's answer, or None when SageMaker knows no job of that name."""
    return described_or_none(sagemaker.describe_transform_job, TransformJobName=name)
