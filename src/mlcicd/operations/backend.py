"""`mlcicd run --backend`: the project with a config of its own for one run, whatever
mlcicd.yaml says — every stage and backend reads it from the project."""

from __future__ import annotations

from mlcicd import git
from mlcicd.config import CONFIG_FILE, RunBackend, with_backend
from mlcicd.project import Project


def on_backend(
    project: Project, backend: RunBackend, *, stack_name: str | None, ref: str | None
) -> Project:
    """``project`` run on ``backend``; with a stack, what its config lacks comes from the
    stack's outputs (the image is the one CodeBuild built from the commit this run runs)."""
    config = project.config
    source = str(project.root / CONFIG_FILE)
    if backend != "aws" or stack_name is None:
        return project.with_config(with_backend(config, backend, source=source))
    from mlcicd.aws.stack import stack_outputs

    outputs = stack_outputs(stack_name)
    commit = None
    if not config.train.image:
        commit = git.resolve_commit(
            project.repo, project.rel, ref or config.branch, config.branch
        ).sha
    return project.with_config(
        with_backend(config, backend, stack_outputs=outputs, commit=commit, source=source)
    )
