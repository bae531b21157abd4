"""Storage: the stack's KMS key, the artifacts and models buckets (and their access-log
bucket), and the ECR repository."""

from __future__ import annotations

import json

from mlcicd.aws.names import StackNames, arn
from mlcicd.aws.template import parameters as p
from mlcicd.aws.template._cfn import (
    ACCOUNT_ID,
    Json,
    arn_of,
    checkov_skips,
    deny_insecure_transport,
    policy_document,
    ref,
    sub,
)

KEY = "EncryptionKey"
KEY_ALIAS = "EncryptionKeyAlias"
ACCESS_LOG_BUCKET = "AccessLogBucket"
ACCESS_LOG_BUCKET_POLICY = "AccessLogBucketPolicy"
ARTIFACTS_BUCKET = "ArtifactsBucket"
ARTIFACTS_BUCKET_POLICY = "ArtifactsBucketPolicy"
MODELS_BUCKET = "ModelsBucket"
MODELS_BUCKET_POLICY = "ModelsBucketPolicy"
REPOSITORY = "ModelRepository"

IMAGES_KEPT = 50  # the newest images kept in ECR; older ones (and untagged ones) expire
ACCESS_LOG_DAYS = 365


def resources(names: StackNames) -> Json:
    return {
        KEY: _key(names),
        KEY_ALIAS: {
            "Type": "AWS::KMS::Alias",
            "Properties": {"AliasName": names.key_alias, "TargetKeyId": ref(KEY)},
        },
        ACCESS_LOG_BUCKET: _access_log_bucket(),
        ACCESS_LOG_BUCKET_POLICY: _access_log_bucket_policy(names),
        ARTIFACTS_BUCKET: _bucket(
            names.artifacts_bucket,
            log_prefix="artifacts/",
            rules=[
                # Pipeline artifacts are read once by the next stage: after that, cheap storage.
                {
                    "Id": "ArtifactsToInfrequentAccess",
                    "Status": "Enabled",
                    "Transitions": [
                        {
                            "StorageClass": "STANDARD_IA",
                            "TransitionInDays": ref(p.ARTIFACT_TRANSITION_DAYS),
                        },
                        {"StorageClass": "GLACIER", "TransitionInDays": 365},
                    ],
                    "NoncurrentVersionTransitions": [
                        {
                            "StorageClass": "GLACIER",
                            "TransitionInDays": ref(p.ARTIFACT_TRANSITION_DAYS),
                        }
                    ],
                },
                _abort_incomplete_uploads(),
            ],
        ),
        ARTIFACTS_BUCKET_POLICY: _tls_only_policy(ARTIFACTS_BUCKET),
        MODELS_BUCKET: _bucket(
            names.models_bucket,
            log_prefix="models/",
            rules=[
                # Current models stay at hand (an endpoint may load one at any time); a
                # replaced version is kept for lineage, in cheaper storage.
                {
                    "Id": "ReplacedModelsToInfrequentAccess",
                    "Status": "Enabled",
                    "NoncurrentVersionTransitions": [
                        {
                            "StorageClass": "STANDARD_IA",
                            "TransitionInDays": ref(p.ARTIFACT_TRANSITION_DAYS),
                        }
                    ],
                },
                _abort_incomplete_uploads(),
            ],
        ),
        MODELS_BUCKET_POLICY: _tls_only_policy(MODELS_BUCKET),
        REPOSITORY: _repository(names),
    }


_LOGS_KEY_ACTIONS = [
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
]


def _key(names: StackNames) -> Json:
    log_groups = [
        names.build_log_group,
        names.training_log_group,
        names.deploy_log_group,
        names.training_jobs_log_group,
        names.endpoint_log_group,
        *names.staging_log_groups,
        *names.api_log_groups,
    ]
    log_group_arns = [sub(arn("logs", f"log-group:{group}")) for group in log_groups]
    return {
        "Type": "AWS::KMS::Key",
        "Properties": {
            "Description": f"Encrypts the {names.stack} stack's buckets, images, logs, topic, "
            "queue "
            "and Lambda environments",
            "EnableKeyRotation": True,
            "KeyPolicy": policy_document(
                {
                    # Lets IAM policies in this account grant use of the key (the roles do).
                    "Sid": "AccountAdministersKey",
                    "Effect": "Allow",
                    "Principal": {"AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    # The encryption context names the log group (CloudWatch Logs' own way to
                    # scope a key): these five ARNs carry this account and region.
                    "Sid": "CloudWatchLogsEncryptsTheStacksLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": sub("logs.${AWS::Region}.amazonaws.com")},
                    "Action": _LOGS_KEY_ACTIONS,
                    "Resource": "*",
                    "Condition": {
                        "ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}
                    },
                },
                {
                    # Alarms publish to the encrypted topic: only the stack's own alarms, in this
                    # account (a service principal acts for every account: without the source
                    # conditions, another account's alarm could use this key — the confused deputy).
                    "Sid": "CloudWatchAlarmsPublishToTheTopic",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                        "ArnLike": {
                            "aws:SourceArn": [
                                sub(arn("cloudwatch", f"alarm:{a}")) for a in names.notifying_alarms
                            ]
                        },
                    },
                },
            ),
        },
    }


def _abort_incomplete_uploads() -> Json:
    return {
        "Id": "AbortIncompleteUploads",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }


def _bucket(name: str, *, log_prefix: str, rules: list[Json]) -> Json:
    return {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketName": sub(name),
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": arn_of(KEY),
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": _PUBLIC_ACCESS_BLOCKED,
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LoggingConfiguration": {
                "DestinationBucketName": ref(ACCESS_LOG_BUCKET),
                "LogFilePrefix": log_prefix,
            },
            "LifecycleConfiguration": {"Rules": rules},
        },
    }


_PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def _access_log_bucket() -> Json:
    return {
        "Type": "AWS::S3::Bucket",
        "Metadata": checkov_skips(
            (
                "CKV_AWS_18",
                "This is the access-log bucket: logging its own access would log the logging.",
            ),
        ),
        "Properties": {
            # S3 server access logging can deliver only to a bucket encrypted with SSE-S3.
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": _PUBLIC_ACCESS_BLOCKED,
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": {
                "Rules": [
                    {
                        "Id": "ExpireAccessLogs",
                        "Status": "Enabled",
                        "ExpirationInDays": ACCESS_LOG_DAYS,
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                    },
                    _abort_incomplete_uploads(),
                ]
            },
        },
    }


def _access_log_bucket_policy(names: StackNames) -> Json:
    logged = [
        sub(f"arn:${{AWS::Partition}}:s3:::{names.artifacts_bucket}"),
        sub(f"arn:${{AWS::Partition}}:s3:::{names.models_bucket}"),
    ]
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": ref(ACCESS_LOG_BUCKET),
            "PolicyDocument": policy_document(
                {
                    "Sid": "S3DeliversAccessLogsOfTheStacksBuckets",
                    "Effect": "Allow",
                    "Principal": {"Service": "logging.s3.amazonaws.com"},
                    "Action": "s3:PutObject",
                    "Resource": sub(f"${{{ACCESS_LOG_BUCKET}.Arn}}/*"),
                    "Condition": {
                        "ArnLike": {"aws:SourceArn": logged},
                        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
                    },
                },
                deny_insecure_transport("s3:*", _bucket_and_objects(ACCESS_LOG_BUCKET)),
            ),
        },
    }


def _tls_only_policy(bucket: str) -> Json:
    return {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "Bucket": ref(bucket),
            "PolicyDocument": policy_document(
                deny_insecure_transport("s3:*", _bucket_and_objects(bucket))
            ),
        },
    }


def _bucket_and_objects(bucket: str) -> list[Json]:
    return [arn_of(bucket), sub(f"${{{bucket}.Arn}}/*")]


def _repository(names: StackNames) -> Json:
    lifecycle = {
        "rules": [
            {
                "rulePriority": 1,
                "description": "Untagged images (replaced layers of failed pushes) expire after "
                "7 days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 7,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {IMAGES_KEPT} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": IMAGES_KEPT,
                },
                "action": {"type": "expire"},
            },
        ]
    }
    return {
        "Type": "AWS::ECR::Repository",
        "Properties": {
            "RepositoryName": names.repository,
            "ImageScanningConfiguration": {"ScanOnPush": True},
            # Tags are commits: an image once pushed under a commit never changes.
            "ImageTagMutability": "IMMUTABLE",
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": arn_of(KEY)},
            "LifecyclePolicy": {"LifecyclePolicyText": json.dumps(lifecycle, sort_keys=True)},
        },
    }
