"""``api:``: an HTTPS API in front of the SageMaker endpoint — API Gateway's REST API with
``POST /invocations`` calling SageMaker Runtime's InvokeEndpoint itself (an AWS service
integration, no Lambda in between), only when ``api.enabled``.

Why a REST API, not an HTTP API: an HTTP API has neither API keys with usage plans (``auth:
api_key``) nor an AWS service integration for SageMaker Runtime (its first-class integrations
are SQS, EventBridge, Kinesis, Step Functions and AppConfig), so it would need a Lambda
proxying every request. The REST API signs the call with its own role, which may invoke this
endpoint and nothing else.

Callers authenticate with SigV4 (``auth: iam``: IAM decides who may call execute-api on this
API) or with an API key of the usage plan (``auth: api_key``); ``api.throttle`` limits the
stage, and the usage plan too. Access logs go to ``/aws/apigateway/<stack>-api`` (the stack's
key, its retention); writing them needs API Gateway's account-wide CloudWatch role, which
the stack sets (``AWS::ApiGateway::Account``) to a role with AWS's managed policy for it — the
role every API in the account and region then logs with.
"""

from __future__ import annotations

import hashlib
import json

from mlcicd.aws.names import StackNames
from mlcicd.aws.template import parameters as p
from mlcicd.aws.template._cfn import (
    Json,
    allow,
    arn_of,
    assume_role_policy,
    checkov_skips,
    get_att,
    policy_document,
    ref,
    sub,
)
from mlcicd.aws.template.storage import KEY
from mlcicd.config import Config

REST_API = "RestApi"
API_RESOURCE = "ApiInvocationsResource"
API_METHOD = "ApiInvokeMethod"
API_STAGE = "ApiStage"
API_ROLE = "ApiGatewayRole"
API_LOG_GROUP = "ApiAccessLogGroup"
API_ACCOUNT = "ApiGatewayAccount"
API_LOGS_ROLE = "ApiGatewayLogsRole"
API_KEY = "ApiKey"
USAGE_PLAN = "ApiUsagePlan"
USAGE_PLAN_KEY = "ApiUsagePlanKey"
STAGE_NAME = "v1"
URL_OUTPUT = "ApiUrl"
KEY_OUTPUT = "ApiKeyId"
AUTH_OUTPUT = "ApiAuth"
ENDPOINT_OUTPUT = "ApiEndpointName"

# One line of JSON per request: who, what, how it went (API Gateway's $context variables).
_ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "apiKeyId": "$context.identity.apiKeyId",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "path": "$context.path",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationStatus": "$context.integration.status",
        "integrationLatency": "$context.integration.latency",
    },
    separators=(",", ":"),
)
_NO_CACHE = (
    "A cache keys on the path and headers, not the body: it would answer one request's "
    "features with another's prediction."
)


def resources(config: Config, names: StackNames) -> Json:
    if not config.api.enabled:
        return {}
    api = config.api
    method = _method(names, api_key=api.auth == "api_key")
    # A deployment is a snapshot: a new logical id when the method changes makes a new one.
    digest = hashlib.sha256(json.dumps(method, sort_keys=True).encode()).hexdigest()[:8]
    deployment = f"ApiDeployment{digest}"
    throttle = {"RateLimit": api.throttle.rate, "BurstLimit": api.throttle.burst}
    out: Json = {
        REST_API: {
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {
                "Name": names.rest_api,
                "Description": f"POST /invocations: the {names.endpoint} SageMaker endpoint",
                "EndpointConfiguration": {"Types": ["REGIONAL"]},
                "ApiKeySourceType": "HEADER",
            },
        },
        API_RESOURCE: {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": ref(REST_API),
                "ParentId": get_att(REST_API, "RootResourceId"),
                "PathPart": "invocations",
            },
        },
        API_METHOD: method,
        deployment: {
            "Type": "AWS::ApiGateway::Deployment",
            "DependsOn": [API_METHOD],
            "Properties": {"RestApiId": ref(REST_API), "Description": f"method {digest}"},
        },
        API_STAGE: {
            "Type": "AWS::ApiGateway::Stage",
            "DependsOn": [API_ACCOUNT],
            "Metadata": checkov_skips(("CKV_AWS_120", _NO_CACHE)),
            "Properties": {
                "RestApiId": ref(REST_API),
                "DeploymentId": ref(deployment),
                "StageName": STAGE_NAME,
                "TracingEnabled": True,
                "AccessLogSetting": {
                    "DestinationArn": arn_of(API_LOG_GROUP),
                    "Format": _ACCESS_LOG_FORMAT,
                },
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "MetricsEnabled": True,
                        "LoggingLevel": "ERROR",
                        "DataTraceEnabled": False,  # request bodies are the users' data
                        "ThrottlingRateLimit": api.throttle.rate,
                        "ThrottlingBurstLimit": api.throttle.burst,
                    }
                ],
            },
        },
        API_ROLE: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"API Gateway: invoke the {names.endpoint} endpoint, nothing else",
                "AssumeRolePolicyDocument": assume_role_policy("apigateway.amazonaws.com"),
                "Policies": [
                    {
                        "PolicyName": "least-privilege",
                        "PolicyDocument": policy_document(
                            allow(
                                "InvokeTheEndpointOnly",
                                ["sagemaker:InvokeEndpoint"],
                                [sub(names.sagemaker_arn("endpoint", names.endpoint))],
                            )
                        ),
                    }
                ],
            },
        },
        API_LOG_GROUP: {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": names.api_log_group,
                "RetentionInDays": ref(p.LOG_RETENTION_DAYS),
                "KmsKeyId": arn_of(KEY),
            },
        },
        API_LOGS_ROLE: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": "API Gateway's account-wide role for writing logs to CloudWatch",
                "AssumeRolePolicyDocument": assume_role_policy("apigateway.amazonaws.com"),
                "ManagedPolicyArns": [
                    sub(
                        "arn:${AWS::Partition}:iam::aws:policy/service-role/"
                        "AmazonAPIGatewayPushToCloudWatchLogs"
                    )
                ],
            },
        },
        API_ACCOUNT: {
            "Type": "AWS::ApiGateway::Account",
            "Properties": {"CloudWatchRoleArn": arn_of(API_LOGS_ROLE)},
        },
    }
    if api.auth == "api_key":
        out[API_KEY] = {
            "Type": "AWS::ApiGateway::ApiKey",
            "DependsOn": [API_STAGE],
            "Properties": {
                "Name": f"{names.rest_api}-key",
                "Description": f"Calls {names.rest_api} (its value: aws apigateway get-api-key "
                "--include-value)",
                "Enabled": True,
            },
        }
        out[USAGE_PLAN] = {
            "Type": "AWS::ApiGateway::UsagePlan",
            "DependsOn": [API_STAGE],
            "Properties": {
                "UsagePlanName": f"{names.rest_api}-plan",
                "ApiStages": [{"ApiId": ref(REST_API), "Stage": STAGE_NAME}],
                "Throttle": throttle,
            },
        }
        out[USAGE_PLAN_KEY] = {
            "Type": "AWS::ApiGateway::UsagePlanKey",
            "Properties": {
                "KeyId": ref(API_KEY),
                "KeyType": "API_KEY",
                "UsagePlanId": ref(USAGE_PLAN),
            },
        }
    return out


def _method(names: StackNames, *, api_key: bool) -> Json:
    """POST /invocations → InvokeEndpoint: the body and its Content-Type and Accept passed
    through as they came; SageMaker's 4xx (a model error among them) and 5xx answered as
    400 and 500 with its message."""
    uri = sub(
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:runtime.sagemaker:"
        f"path/endpoints/{names.endpoint}/invocations"
    )
    headers = ("Content-Type", "Accept")
    return {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": ref(REST_API),
            "ResourceId": ref(API_RESOURCE),
            "HttpMethod": "POST",
            "AuthorizationType": "NONE" if api_key else "AWS_IAM",
            "ApiKeyRequired": api_key,
            "RequestParameters": {f"method.request.header.{h}": False for h in headers},
            "Integration": {
                "Type": "AWS",
                "IntegrationHttpMethod": "POST",
                "Uri": uri,
                "Credentials": arn_of(API_ROLE),
                "PassthroughBehavior": "WHEN_NO_MATCH",
                "RequestParameters": {
                    f"integration.request.header.{h}": f"method.request.header.{h}" for h in headers
                },
                "IntegrationResponses": [
                    {"StatusCode": "200"},
                    {"StatusCode": "400", "SelectionPattern": "4\\d{2}"},
                    {"StatusCode": "500", "SelectionPattern": "5\\d{2}"},
                ],
            },
            "MethodResponses": [{"StatusCode": s} for s in ("200", "400", "500")],
        },
    }


def outputs(config: Config) -> dict[str, tuple[str, object]]:
    """The API's URL, its auth and (``api_key``) its key's id, for ``mlcicd invoke --via-api``."""
    if not config.api.enabled:
        return {}
    found: dict[str, tuple[str, object]] = {
        URL_OUTPUT: (
            "POST here to invoke the endpoint through API Gateway",
            sub(
                f"https://${{{REST_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/"
                f"{STAGE_NAME}/invocations"
            ),
        ),
        AUTH_OUTPUT: ("How callers authenticate: iam (SigV4) or api_key", config.api.auth),
        ENDPOINT_OUTPUT: ("The endpoint the API invokes", config.endpoint_name),
    }
    if config.api.auth == "api_key":
        found[KEY_OUTPUT] = ("The API key's id (get-api-key --include-value)", ref(API_KEY))
    return found


__all__ = [
    "AUTH_OUTPUT",
    "ENDPOINT_OUTPUT",
    "KEY_OUTPUT",
    "STAGE_NAME",
    "URL_OUTPUT",
    "outputs",
    "resources",
]
