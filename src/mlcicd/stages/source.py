"""SOURCE: resolve the commit and export its tree, so only committed content is built."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from mlcicd import git
from mlcicd.config import Config
from mlcicd.config.processing import parse_reference
from mlcicd.errors import ProjectError
from mlcicd.pipeline import RunContext, StageResult


class SourceStage:
    name: ClassVar[str] = "source"

    def log_group(self, config: Config) -> str:
        return f"/aws/codepipeline/{config.pipeline}"

    def run(self, ctx: RunContext) -> StageResult:
        project = ctx.project
        repo, rel = project.repo, project.rel
        branch = ctx.config.branch
        ref = ctx.options.ref or branch
        if ctx.options.ref is None and git.current_branch(repo) not in (branch, None):
            # HEAD of the configured branch is what runs, whatever is checked out.
            ctx.log(
                f"note: {branch!r} is built, not the checked-out branch "
                f"{git.current_branch(repo)!r}"
            )
        dirty = git.dirty_paths(repo, rel)
        if dirty and not ctx.options.allow_dirty:
            shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
            raise ProjectError(
                f"the working tree has uncommitted changes: {shown}",
                hint="commit them, or pass --allow-dirty to run the last commit anyway",
            )
        commit = git.resolve_commit(repo, rel, ref, branch)
        if dirty:
            ctx.log(f"--allow-dirty: {len(dirty)} uncommitted file(s) are NOT part of this run")
        project.state.update_run_source(
            ctx.run.id,
            commit_sha=commit.sha,
            branch=branch,
            author=commit.author,
            message=commit.message,
            dirty=bool(dirty),
        )
        ctx.log(
            f"commit {commit.sha[:12]} on {branch} by {commit.author}: "
            f"{commit.message.splitlines()[0] if commit.message else ''}"
        )
        source_dir = project.state_dir / "sources" / commit.tree
        cached = source_dir.is_dir()
        if not cached:
            git.export_tree(repo, commit.sha, rel, source_dir)
        ctx.log(
            f"tree {commit.tree[:12]} {'already exported' if cached else 'exported'} to "
            f"{source_dir}"
        )
        _check_files(ctx.config, source_dir, commit.sha)
        subject = commit.message.splitlines()[0] if commit.message else ""
        return StageResult(
            status="Succeeded",
            message=f"{commit.sha[:12]} {subject}"[:80],
            outputs={
                "commit": commit.sha,
                "branch": branch,
                "author": commit.author,
                "message": commit.message,
                "tree": commit.tree,
                "dirty": bool(dirty),
                "source_dir": str(source_dir),
            },
        )


def _check_files(config: Config, source_dir: Path, sha: str) -> None:
    """Fail now, naming the file, rather than minutes later in the stage that needs it."""
    needed = {
        "build.requirements": config.build.requirements,
        "train.entry_point": f"{config.train.source_dir}/{config.train.entry_point}",
        "deploy.entry_point": f"{config.deploy.source_dir}/{config.deploy.entry_point}",
    }
    steps = {s.name: s for s in config.processing}
    needed.update(
        {
            f"train.channels.{name}": path
            for name, path in config.train.channels.items()
            if not Path(path).is_absolute() and parse_reference(path, steps) is None
        }
    )
    for i, step in enumerate(config.processing):  # an earlier step's output is not in the commit
        needed[f"processing[{i}].entry_point"] = f"{step.source_dir}/{step.entry_point}"
        needed.update(
            {
                f"processing[{i}].inputs.{name}": path
                for name, path in step.inputs.items()
                if not Path(path).is_absolute() and parse_reference(path, steps) is None
            }
        )
    for key, rel in needed.items():
        if not (source_dir / rel).exists():
            raise ProjectError(
                f"{rel} is not in commit {sha[:12]} (named by {key} in mlcicd.yaml)",
                hint="commit the file, or fix the setting",
            )
