"""The AWS target: the reference architecture as a CloudFormation stack.

``mlcicd.aws.template`` generates the stack as plain data (``build_template``) and YAML
(``to_yaml``); ``mlcicd.aws.names`` holds the names and ARN patterns that the template and
the orchestrator Lambdas share, so a policy scoped by name prefix and the code that creates
the resources cannot drift apart.
"""
