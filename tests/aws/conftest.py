"""Fixtures for the AWS tests: the iris config, and moto's server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from mlcicd.config import CONFIG_FILE, Config, load_config, parse_config
from tests.aws import job_times
from tests.conftest import IRIS
from tests.helpers import free_port

REGION = "us-east-1"


@pytest.fixture(scope="session")
def iris_config() -> Config:
    return load_config(IRIS)


# The rest of deploy: — what `mlcicd run --backend aws` maps to SageMaker, and the stack too.
CANARY_DEPLOY = {
    "instance_type": "ml.c5.large",
    "instance_count": 2,
    "strategy": "canary",
    "canary": {"percent": 20, "bake_seconds": 300},
    "alarms": {"max_5xx_rate": 0.01, "max_p99_latency_ms": 250, "min_invocations": 20},
    "data_capture": {"enabled": True, "sampling_percentage": 20},
}


def iris_with_deploy(**deploy: object) -> Config:
    """examples/iris's mlcicd.yaml with these keys of ``deploy:`` replaced."""
    data = yaml.safe_load((IRIS / CONFIG_FILE).read_text())
    data["deploy"].update(deploy)
    return parse_config(yaml.safe_dump(data))


@pytest.fixture(scope="session")
def canary_config() -> Config:
    """examples/iris deploying canary first, with rollback alarms and data capture."""
    return iris_with_deploy(**CANARY_DEPLOY)


# Issue 14's keys together: autoscaling, the API in front, the VPC, spot with checkpoints.
SCALED = {
    "deploy": {
        "autoscaling": {
            "min_instances": 1,
            "max_instances": 4,
            "target_invocations_per_instance": 1000,
        }
    },
    "api": {"enabled": True, "auth": "api_key", "throttle": {"rate": 50, "burst": 100}},
    "network": {
        "subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
        "security_groups": ["sg-0123abcd"],
        "isolation": True,
        "private_subnets": True,
        "vpc_id": "vpc-0123456789abcdef0",
        "route_tables": ["rtb-0123abcd"],
    },
    "train": {"use_spot": True, "max_wait": 90000, "checkpoints": True},
}


def scaled_in_moto(aws: Callable[[str], Any]) -> dict[str, Any]:
    """SCALED with its network in a VPC made in moto's server (whose CloudFormation checks
    that the VPC of a VPC endpoint exists)."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="jobs", Description="jobs", VpcId=vpc)["GroupId"]
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    network = {
        **SCALED["network"],
        "vpc_id": vpc,
        "subnets": [subnet],
        "security_groups": [group],
        "route_tables": [table],
    }
    return {**SCALED, "network": network}


@pytest.fixture(scope="session")
def scaled_config() -> Config:
    """examples/iris with every key of issue 14 (autoscaling, api, network, spot)."""
    return iris_with(**SCALED)


# staging: the testing stage, with the project's endpoint tests and a load check.
STAGING = {
    "test": "python -m pytest -q tests/endpoint",
    "load": {"requests": 200, "concurrency": 4, "p99_ms": 250, "max_error_rate": 0.01},
}


def iris_with(**sections: object) -> Config:
    """examples/iris's mlcicd.yaml with these top-level sections set (a section it has is
    updated key by key)."""
    data = yaml.safe_load((IRIS / CONFIG_FILE).read_text())
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name].update(value)
        else:
            data[name] = value
    return parse_config(yaml.safe_dump(data))


@pytest.fixture(scope="session")
def staging_config() -> Config:
    """examples/iris with a testing stage (its staging endpoint deleted after)."""
    return iris_with(staging=STAGING)


PIPELINE_EXAMPLE = IRIS.parent / "pipeline"


def pipeline_with(**sections: object) -> Config:
    """examples/pipeline's mlcicd.yaml (prepare → train → evaluate, gated on evaluate's
    report) with these top-level sections replaced."""
    data = yaml.safe_load((PIPELINE_EXAMPLE / CONFIG_FILE).read_text())
    data.update(sections)
    return parse_config(yaml.safe_dump(data))


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port, for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"moto_server did not answer on {url} within 60 s:\n{log.read_text()}"
                    )
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


AwsClient = Callable[[str], Any]


def reset(moto_server: str) -> None:
    """Forget every resource moto holds (it keeps one state for the whole server)."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass


def clients(moto_server: str) -> AwsClient:
    """A factory of real boto3 clients talking to moto's server, with dummy credentials."""
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=moto_server,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture
def aws(moto_server: str) -> AwsClient:
    """Clients of a freshly reset moto server."""
    reset(moto_server)
    return clients(moto_server)


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> AwsClient:
    """A freshly reset moto server that mlcicd's own clients reach through the environment
    (``MLCICD_AWS_ENDPOINT_URL``, dummy credentials, no profile); returns the test's clients."""
    reset(moto_server)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLCICD_AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    job_times.follow()
    return clients(moto_server)


def push_image(aws: AwsClient, uri: str) -> None:
    """Put ``uri`` (``<registry>/<repository>:<tag>``) in moto's ECR as `docker push` would:
    its repository, if missing, then a manifest under the tag (moto stores no layers)."""
    repository, _, tag = uri.partition("/")[2].rpartition(":")
    ecr = aws("ecr")
    if repository not in [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]:
        ecr.create_repository(repositoryName=repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + tag.encode().hex().ljust(64, "0")[:64],
        },
        "layers": [],
    }
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))
