"""The store tests reuse the AWS tests' moto server and environment fixtures."""

from tests.aws.conftest import aws_env, moto_server  # noqa: F401  (fixtures)
