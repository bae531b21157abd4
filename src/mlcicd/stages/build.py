"""BUILD: the isolated environment from requirements.txt, then the project's own tests.

The build digest is the sha256 of the source tree, the environment and the test command:
a build with the same digest already passed, so a rerun reuses it ("cached").
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path
from typing import ClassVar

from mlcicd.config import Config, ImageConfig
from mlcicd.environments import ensure_environment, environment_extras
from mlcicd.errors import BuildError
from mlcicd.pipeline import RunContext, StageResult
from mlcicd.process import run_streaming
from mlcicd.project import cache_dir


def image_settings(config: Config) -> ImageConfig | None:
    """The image the build stage builds: ``build.image``, implied by a ``container`` backend."""
    settings = config.build.image_settings
    if settings is None and "container" in (config.train.backend, config.deploy.backend):
        return ImageConfig()
    return settings


class BuildStage:
    name: ClassVar[str] = "build"

    def log_group(self, config: Config) -> str:
        return f"/aws/codebuild/{config.pipeline}-build"

    def run(self, ctx: RunContext) -> StageResult:
        build = ctx.config.build
        source_dir = Path(ctx.outputs["source"]["source_dir"])
        env = ensure_environment(
            source_dir / build.requirements,
            environment_extras(ctx.config),
            cache_dir(),
            log=ctx.log,
            timeout=build.timeout,
        )
        ctx.log(f"environment {env.key[:12]} {'reused' if env.cached else 'built'}: {env.path}")
        digest = hashlib.sha256(
            json.dumps(
                {"tree": ctx.outputs["source"]["tree"], "environment": env.key, "test": build.test},
                sort_keys=True,
            ).encode()
        ).hexdigest()
        outputs = {"digest": digest, "environment": str(env.path), "python": str(env.python)}
        previous = ctx.project.state.last_outputs("build", key="digest", value=digest)
        if previous and not ctx.options.force and env.cached:
            ctx.log(f"build {digest[:12]} already passed its tests in an earlier run")
            outputs.update(self._image(ctx, source_dir))
            return StageResult(
                "Cached", f"build {digest[:12]}", {**outputs, "tests": previous.get("tests")}
            )
        tests = "none configured"
        if build.test:
            tests = self._test(ctx, build.test, source_dir, env.env_vars(), build.timeout)
        outputs.update(self._image(ctx, source_dir))
        return StageResult(
            "Succeeded", f"build {digest[:12]}, tests {tests}", {**outputs, "tests": tests}
        )

    def _image(self, ctx: RunContext, source_dir: Path) -> dict[str, str]:
        """The commit's image (``build.image``, or a ``container`` backend): built with podman
        once per context digest; its tag and id go to the stages after (lineage)."""
        settings = image_settings(ctx.config)
        if settings is None:
            return {}
        from mlcicd.images.build import build_image, choose_base, image_tag

        source = ctx.outputs["source"]
        built = build_image(
            source_dir,
            tag=image_tag(ctx.config.pipeline, source["commit"]),
            tree=source["tree"],
            commit=source["commit"],
            base=choose_base(None, settings.base),
            dockerfile=settings.dockerfile,
            force=ctx.options.force,
            log=ctx.log,
            timeout=ctx.config.build.timeout,
        )
        ctx.log(f"image {built.tag} {built.image_id} {'built' if built.built else 'reused'}")
        return {"image": built.tag, "image_id": built.image_id}

    def _test(
        self, ctx: RunContext, command: str, cwd: Path, env: dict[str, str], timeout: int
    ) -> str:
        ctx.log(f"$ {command}")
        try:
            outcome = run_streaming(
                shlex.split(command), cwd=cwd, env=env, on_line=ctx.log, max_runtime_seconds=timeout
            )
        except OSError as exc:
            raise BuildError(
                f"cannot run the test command `{command}`: {exc}", hint="check build.test"
            ) from exc
        if outcome.timed_out:
            raise BuildError(f"the tests (`{command}`) ran longer than build.timeout ({timeout}s)")
        last = next((line for line in reversed(outcome.tail) if line.strip()), "")
        if outcome.exit_code != 0:
            raise BuildError(
                f"the project's tests failed (`{command}` exited {outcome.exit_code}): "
                f"{last.strip('= ')}",
                hint="the test output is in `mlcicd logs RUN --stage build`",
            )
        return last.strip("= ") or "passed"
