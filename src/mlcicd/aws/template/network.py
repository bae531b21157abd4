"""``network.private_subnets``: VPC endpoints for subnets with no route to the internet.

A training job or a Model in such subnets reaches S3 (its channels, the model, checkpoints,
captured data) and SageMaker's APIs (a container calling SageMaker Runtime) only through VPC
endpoints: S3 as a gateway on the subnets' route tables, SageMaker's API and Runtime as
interface endpoints in the subnets, with private DNS so the usual names resolve to them.
The endpoints' policies stay AWS's default (full access): a gateway endpoint serves every
workload on those route tables, and one narrowed to this stack's buckets would cut the
others off S3. The security groups must let the subnets reach the interface endpoints on
HTTPS (443); the stack does not change the user's groups.
"""

from __future__ import annotations

from mlcicd.aws.template._cfn import Json, sub
from mlcicd.config import NetworkConfig

S3_ENDPOINT = "S3VpcEndpoint"
SAGEMAKER_API_ENDPOINT = "SageMakerApiVpcEndpoint"
SAGEMAKER_RUNTIME_ENDPOINT = "SageMakerRuntimeVpcEndpoint"


def resources(network: NetworkConfig) -> Json:
    if not network.private_subnets:
        return {}

    def interface(service: str) -> Json:
        return {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": network.vpc_id,
                "ServiceName": sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                "VpcEndpointType": "Interface",
                "SubnetIds": list(network.subnets),
                "SecurityGroupIds": list(network.security_groups),
                "PrivateDnsEnabled": True,
            },
        }

    return {
        S3_ENDPOINT: {
            "Type": "AWS::EC2::VPCEndpoint",
            "Properties": {
                "VpcId": network.vpc_id,
                "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
                "VpcEndpointType": "Gateway",
                "RouteTableIds": list(network.route_tables),
            },
        },
        SAGEMAKER_API_ENDPOINT: interface("sagemaker.api"),
        SAGEMAKER_RUNTIME_ENDPOINT: interface("sagemaker.runtime"),
    }


__all__ = ["resources"]
