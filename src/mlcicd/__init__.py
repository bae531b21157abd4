"""mlcicd: CI/CD for machine-learning models, on one machine or on AWS SageMaker.

Kept import-light on purpose: the endpoint workers import ``mlcicd.serving`` inside the
model's own environment, and the CLI's unchanged rerun must start in well under a second.
"""

__version__ = "0.1.0"
