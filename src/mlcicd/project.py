"""Where a project is, and where its state lives.

A project is a directory holding ``mlcicd.yaml`` inside a git repository (it may be a
subdirectory of a larger repository). Its state — the SQLite database, the artifact store,
logs, training jobs, endpoints — lives in ``<project>/.mlcicd/`` (kept out of git through
``.git/info/exclude``), or in ``$MLCICD_HOME`` when that is set. Built Python environments
are shared across projects in ``$MLCICD_CACHE`` (default ``~/.cache/mlcicd``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from mlcicd import git, process
from mlcicd.config import CONFIG_FILE, Config, load_config, parse_config
from mlcicd.errors import ProjectError
from mlcicd.fsutil import private_dir
from mlcicd.state import State
from mlcicd.store import ArtifactStore, open_store

STATE_DIR_NAME = ".mlcicd"


def cache_dir() -> Path:
    if env := os.environ.get("MLCICD_CACHE"):
        return Path(env).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "mlcicd").resolve()


def find_project_dir(start: Path) -> Path:
    """``start`` or its nearest ancestor holding mlcicd.yaml."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ProjectError(
        f"no {CONFIG_FILE} in {start} or any directory above it",
        hint="run inside a project, or pass its directory with -C DIR",
    )


@dataclass
class Project:
    root: Path
    commit: str | None = None
    """The commit whose mlcicd.yaml is :attr:`config` (see :meth:`at_commit`); None: the
    working tree's."""
    given_config: Config | None = field(default=None, repr=False)
    """A config that stands for mlcicd.yaml (see :meth:`with_config`); None: read the file."""

    @classmethod
    def find(cls, start: Path) -> Project:
        return cls(find_project_dir(start))

    def at_commit(self, sha: str) -> Project:
        """This project with mlcicd.yaml as committed in ``sha``: a pushed commit runs with its
        own pipeline definition, not the one in the working tree.

        The state database already open is shared, so a caller holding ``project.state`` and the
        returned project's ``state`` see the same connection.
        """
        pinned = self._sharing_state(sha, None)
        pinned.config  # noqa: B018 -- read now: a commit without mlcicd.yaml fails here, not later
        return pinned

    def with_config(self, config: Config) -> Project:
        """This project run with ``config`` instead of its mlcicd.yaml (`mlcicd run --backend`):
        every stage and backend reads the config from the project, so this one reaches them all.

        The state database already open is shared, as with :meth:`at_commit`.
        """
        return self._sharing_state(self.commit, config)

    def _sharing_state(self, commit: str | None, given_config: Config | None) -> Project:
        project = dataclasses.replace(self, commit=commit, given_config=given_config)
        for shared in ("state_dir", "state"):
            if shared in self.__dict__:  # cached_property's slot: reuse, don't reopen
                project.__dict__[shared] = self.__dict__[shared]
        return project

    @cached_property
    def config(self) -> Config:
        if self.given_config is not None:
            config = self.given_config
        elif self.commit is None:
            config = load_config(self.root)
        else:
            config = self._committed_config()
        # Whoever reads the config may hold the webhook secret: its children must not see it.
        process.withhold(config.service.webhook_secret_env)
        return config

    def _committed_config(self) -> Config:
        assert self.commit is not None
        path = "/".join(p for p in (self.rel, CONFIG_FILE) if p)
        try:
            text = git.git(self.repo, "show", f"{self.commit}:{path}").decode()
        except ProjectError as exc:
            raise ProjectError(f"{path} is not in commit {self.commit[:12]}") from exc
        return parse_config(text, source=f"{self.commit[:12]}:{path}")

    @cached_property
    def state_dir(self) -> Path:
        """The state directory, created 0700 (see :func:`~mlcicd.fsutil.private_dir`)."""
        if env := os.environ.get("MLCICD_HOME"):
            return private_dir(Path(env).expanduser().resolve())
        return private_dir(self.root / STATE_DIR_NAME)

    @cached_property
    def state(self) -> State:
        return State(self.state_dir / "state.db")

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store(self.config.store.uri, default_root=self.state_dir / "artifacts")

    def model_archive(self, uri: str, sha256: str) -> Path:
        """A local, digest-checked model.tar.gz (downloaded once from a remote store)."""
        path = self.store.local_path(uri)
        if path is None:
            path = self.state_dir / "models" / sha256 / "model.tar.gz"
            if not path.is_file():
                self.store.get_file(uri, path, expected_sha256=sha256)
        return path

    @cached_property
    def repo(self) -> Path:
        return git.repo_root(self.root)

    @cached_property
    def rel(self) -> str:
        """The project directory relative to the repository root ('' for the root itself)."""
        rel = self.root.resolve().relative_to(self.repo.resolve()).as_posix()
        return "" if rel == "." else rel

    def path(self, *parts: str) -> Path:
        """A path inside the state directory, its parent created."""
        path = self.state_dir.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def keep_state_out_of_git(self) -> None:
        if self.state_dir.is_relative_to(self.repo):
            git.exclude_path(self.repo, f"/{self.state_dir.relative_to(self.repo).as_posix()}/")
