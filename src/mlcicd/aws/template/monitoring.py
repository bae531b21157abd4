"""Monitoring: the log groups of the reference, the topic for approvals and alarms, the
Lambdas' dead-letter queue, and the CloudWatch alarms."""

from __future__ import annotations

from typing import Any

from mlcicd.aws.names import VARIANT_NAME, StackNames
from mlcicd.aws.template import parameters as p
from mlcicd.aws.template._cfn import Json, arn_of, get_att, ref
from mlcicd.aws.template.storage import KEY

BUILD_LOG_GROUP = "BuildLogGroup"
TRAINING_FUNCTION_LOG_GROUP = "TrainingFunctionLogGroup"
DEPLOY_FUNCTION_LOG_GROUP = "DeployFunctionLogGroup"
TRAINING_JOBS_LOG_GROUP = "TrainingJobsLogGroup"
ENDPOINT_LOG_GROUP = "EndpointLogGroup"
STAGING_TEST_LOG_GROUP = "StagingTestLogGroup"  # with staging: only
STAGING_ENDPOINT_LOG_GROUP = "StagingEndpointLogGroup"
TOPIC = "NotificationTopic"
EMAIL_SUBSCRIPTION = "NotificationEmailSubscription"
DEAD_LETTER_QUEUE = "DeadLetterQueue"
ENDPOINT_ERRORS_ALARM = "EndpointErrorsAlarm"
ENDPOINT_LATENCY_ALARM = "EndpointLatencyAlarm"
TRAINING_FUNCTION_ERRORS_ALARM = "TrainingFunctionErrorsAlarm"
DEPLOY_FUNCTION_ERRORS_ALARM = "DeployFunctionErrorsAlarm"
DEAD_LETTER_QUEUE_ALARM = "DeadLetterQueueAlarm"

_PERIOD = 300  # seconds: CloudWatch's standard resolution for these metrics


def resources(names: StackNames) -> Json:
    groups = {
        BUILD_LOG_GROUP: names.build_log_group,
        TRAINING_FUNCTION_LOG_GROUP: names.training_log_group,
        DEPLOY_FUNCTION_LOG_GROUP: names.deploy_log_group,
        TRAINING_JOBS_LOG_GROUP: names.training_jobs_log_group,
        ENDPOINT_LOG_GROUP: names.endpoint_log_group,
    }
    if names.staging_endpoint_log_group is not None:
        groups[STAGING_TEST_LOG_GROUP] = names.staging_test_log_group
        groups[STAGING_ENDPOINT_LOG_GROUP] = names.staging_endpoint_log_group
    out: Json = {logical_id: _log_group(name) for logical_id, name in groups.items()}
    # One log group per account and region, shared by all training jobs: an account that
    # has trained before has it already, and CloudFormation cannot adopt it.
    out[TRAINING_JOBS_LOG_GROUP]["Condition"] = p.MANAGES_TRAINING_JOBS_LOG_GROUP
    out[TOPIC] = {
        "Type": "AWS::SNS::Topic",
        "Properties": {
            "TopicName": names.topic,
            "DisplayName": f"{names.stack}: approvals and alarms",
            "KmsMasterKeyId": ref(KEY),
        },
    }
    out[EMAIL_SUBSCRIPTION] = {
        "Type": "AWS::SNS::Subscription",
        "Condition": p.HAS_NOTIFICATION_EMAIL,
        "Properties": {
            "TopicArn": ref(TOPIC),
            "Protocol": "email",
            "Endpoint": ref(p.NOTIFICATION_EMAIL),
        },
    }
    # CodePipeline invokes the Lambdas asynchronously; an invocation that fails every retry
    # lands here (and raises an alarm) instead of vanishing.
    out[DEAD_LETTER_QUEUE] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": names.dead_letter_queue,
            "KmsMasterKeyId": ref(KEY),
            "MessageRetentionPeriod": 14 * 24 * 3600,
        },
    }
    endpoint = [
        {"Name": "EndpointName", "Value": names.endpoint},
        {"Name": "VariantName", "Value": VARIANT_NAME},
    ]
    out[ENDPOINT_ERRORS_ALARM] = _alarm(
        names.endpoint_errors_alarm,
        f"The endpoint {names.endpoint} answered with 5XX errors",
        namespace="AWS/SageMaker",
        metric="Invocation5XXErrors",
        dimensions=endpoint,
        statistic={"Statistic": "Sum"},
        threshold=ref(p.ENDPOINT_5XX_THRESHOLD),
        comparison="GreaterThanOrEqualToThreshold",
    )
    out[ENDPOINT_LATENCY_ALARM] = _alarm(
        names.endpoint_latency_alarm,
        f"The endpoint {names.endpoint}'s p99 model latency is above the threshold",
        namespace="AWS/SageMaker",
        metric="ModelLatency",
        dimensions=endpoint,
        statistic={"ExtendedStatistic": "p99"},
        threshold=ref(p.MODEL_LATENCY_P99_THRESHOLD),
        comparison="GreaterThanThreshold",
        periods=3,
    )
    for logical_id, function, alarm in (
        (
            TRAINING_FUNCTION_ERRORS_ALARM,
            names.training_function,
            names.training_function_errors_alarm,
        ),
        (DEPLOY_FUNCTION_ERRORS_ALARM, names.deploy_function, names.deploy_function_errors_alarm),
    ):
        out[logical_id] = _alarm(
            alarm,
            f"The orchestrator Lambda {function} failed",
            namespace="AWS/Lambda",
            metric="Errors",
            dimensions=[{"Name": "FunctionName", "Value": function}],
            statistic={"Statistic": "Sum"},
            threshold=1,
            comparison="GreaterThanOrEqualToThreshold",
        )
    out[DEAD_LETTER_QUEUE_ALARM] = _alarm(
        names.dead_letter_queue_alarm,
        "An orchestrator Lambda invocation failed all its retries (see the dead-letter queue)",
        namespace="AWS/SQS",
        metric="ApproximateNumberOfMessagesVisible",
        dimensions=[{"Name": "QueueName", "Value": get_att(DEAD_LETTER_QUEUE, "QueueName")}],
        statistic={"Statistic": "Maximum"},
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
    )
    return out


def _log_group(name: str) -> Json:
    return {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": name,
            "RetentionInDays": ref(p.LOG_RETENTION_DAYS),
            "KmsKeyId": arn_of(KEY),
        },
    }


def _alarm(
    name: str,
    description: str,
    *,
    namespace: str,
    metric: str,
    dimensions: list[Json],
    statistic: Json,
    threshold: Any,
    comparison: str,
    periods: int = 1,
) -> Json:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": name,
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": dimensions,
            **statistic,
            "Period": _PERIOD,
            "EvaluationPeriods": periods,
            "DatapointsToAlarm": periods,
            "Threshold": threshold,
            "ComparisonOperator": comparison,
            # No traffic is not an outage: an idle endpoint stays OK.
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ref(TOPIC)],
            "OKActions": [ref(TOPIC)],
        },
    }
