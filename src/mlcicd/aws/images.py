"""Images in ECR: is the one a training job names there?

SageMaker pulls a training job's image only once its instances are up, minutes after
CreateTrainingJob, and a missing one then fails the job with an error that does not say
what to do. ``mlcicd run --backend aws --stack-name`` names the image CodeBuild builds for
the commit being run — which nobody built if the pipeline has not run that commit — so
:func:`require_image` asks ECR first (DescribeImages) and fails at once, naming the image
and how to push it. Only images in an ECR registry
(``<account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag|@digest]``) are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from mlcicd.aws.clients import client
from mlcicd.errors import ArtifactError, AwsError

_REGISTRY = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)


@dataclass(frozen=True)
class EcrImage:
    """An image URI in an ECR registry, in the parts DescribeImages asks for."""

    uri: str
    registry: str  # the host: <account>.dkr.ecr.<region>.amazonaws.com
    account: str
    region: str
    repository: str
    tag: str | None  # one of tag and digest
    digest: str | None

    @property
    def image_id(self) -> dict[str, str]:
        return {"imageDigest": self.digest} if self.digest else {"imageTag": self.tag or "latest"}

    @property
    def reference(self) -> str:
        return f"digest {self.digest}" if self.digest else f"tag {self.tag}"


def parse_ecr_image(uri: str) -> EcrImage | None:
    """``uri``'s parts if it names an image in an ECR registry, else None."""
    registry, slash, rest = uri.partition("/")
    match = _REGISTRY.match(registry)
    if not slash or not rest or match is None:
        return None
    if "@" in rest:
        repository, _, digest = rest.partition("@")
        tag = None
    else:
        repository, colon, tag_part = rest.rpartition(":")
        if not colon:  # no tag: docker's default
            repository, tag_part = rest, "latest"
        tag, digest = tag_part, None
    return EcrImage(
        uri=uri,
        registry=registry,
        account=match["account"],
        region=match["region"],
        repository=repository,
        tag=tag,
        digest=digest,
    )


def require_image(uri: str) -> str | None:
    """Raise ``ArtifactError`` if ``uri`` names an ECR image that is not there; return a line
    for the log saying what was found (None for an image in another registry: not checked).

    Other AWS errors are raised as ``AwsError``, except a refused DescribeImages: the caller
    may lack ``ecr:DescribeImages`` yet SageMaker's role may pull, so that returns a line
    saying the check was skipped.
    """
    image = parse_ecr_image(uri)
    if image is None:
        return None
    ecr = client("ecr", region=image.region)
    try:
        answer = ecr.describe_images(
            registryId=image.account, repositoryName=image.repository, imageIds=[image.image_id]
        )
    except AwsError as exc:
        if exc.code == "ImageNotFoundException":
            raise ArtifactError(
                f"image {uri} is not in ECR: repository {image.repository} has no image with "
                f"{image.reference} (registry {image.account}, {image.region})",
                hint=_push_hint(image),
            ) from exc
        if exc.code == "RepositoryNotFoundException":
            raise ArtifactError(
                f"image {uri}: ECR repository {image.repository} does not exist in registry "
                f"{image.account} ({image.region})",
                hint="deploy the stack that creates it with `mlcicd aws deploy`, or correct "
                "train.image or --stack-name",
            ) from exc
        if exc.code in ("AccessDenied", "AccessDeniedException"):
            return (
                f"image {uri} not looked up in ECR ({exc.code}: these credentials may not call "
                "ecr:DescribeImages; SageMaker's role may still pull it)"
            )
        raise
    pushed = (answer.get("imageDetails") or [{}])[0].get("imagePushedAt")
    when = (
        f" (pushed {pushed.isoformat(timespec='seconds')})" if isinstance(pushed, datetime) else ""
    )
    return f"image {uri} is in ECR{when}"


def _push_hint(image: EcrImage) -> str:
    if image.digest:
        return (
            "no image with that digest was pushed, or it was deleted (the stack's repository "
            "expires untagged images after 7 days): push the image again and name it by its tag"
        )
    return (
        "push it first: let the pipeline on AWS build this commit — push it to the pipeline's "
        "branch; CodeBuild runs buildspec.yml — or, by hand from the project directory, "
        f"`aws ecr get-login-password --region {image.region} | docker login --username AWS "
        f"--password-stdin {image.registry}`, then `docker build -t {image.uri} .` and "
        f"`docker push {image.uri}`"
    )


__all__ = ["EcrImage", "parse_ecr_image", "require_image"]
