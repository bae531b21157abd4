"""Git hooks that tell `mlcicd up` about new commits: ``post-receive`` in a bare repository
(a push arrived), ``post-commit`` in a working repository.

The hook only says "look at this repository" (``POST /api/notify``); the service reads the
branch head itself. It sends the service's token, read when it runs from the token file it was
installed with (``.mlcicd/service.token`` of the project; ``$MLCICD_TOKEN`` overrides), so the
token is never copied into the repository. It never fails a push or a commit: with no service
listening, or a token refused, it says so and exits 0. It runs this mlcicd's interpreter, so it
needs neither curl nor a PATH.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlcicd import git
from mlcicd.errors import ProjectError

if TYPE_CHECKING:  # the hook itself runs this module: it imports no more than it needs
    from mlcicd.project import Project

MARKER = "# installed by mlcicd hooks install"


def hook_script(url: str, token_file: Path | None = None) -> str:
    """The hook's shell script. The URL is checked and quoted: a quote, ``$(…)`` or a line
    break in it would otherwise become a command that every push or commit runs. The token
    file's path is quoted too; the token itself is read when the hook runs."""
    if not re.fullmatch(r"https?://[^\s\x00-\x1f\x7f]+", url):
        raise ProjectError(
            f"the service URL {url[:200]!r} is not an http(s) URL without spaces or control "
            "characters",
            hint="pass the URL `mlcicd up` prints, e.g. --url http://127.0.0.1:8765",
        )
    token = f" {shlex.quote(str(token_file))}" if token_file is not None else ""
    return (
        "#!/bin/sh\n"
        f"{MARKER}: tell `mlcicd up` at {url} that this repository changed\n"
        f"{shlex.quote(sys.executable)} -m mlcicd.hooks {shlex.quote(url)} "
        f'"$(pwd)"{token} || true\n'
    )


def hook_url(project: Project | None) -> str:
    """Where a hook should knock: the project's live `mlcicd up`, else the port it would listen
    on (service.port; the default one without a project)."""
    from mlcicd.config import ServiceConfig
    from mlcicd.daemon.client import find_running_service

    if project is None:
        return f"http://127.0.0.1:{ServiceConfig().port}"
    return find_running_service(project) or f"http://127.0.0.1:{project.config.service.port}"


def install(repo: Path, url: str, *, force: bool = False, token_file: Path | None = None) -> Path:
    """Install the hook in ``repo``; its path. An existing hook of another origin is kept."""
    repo = repo.resolve()
    try:
        bare = git.git(repo, "rev-parse", "--is-bare-repository").decode().strip() == "true"
        hooks_dir = Path(git.git(repo, "rev-parse", "--git-path", "hooks").decode().strip())
    except ProjectError as exc:
        raise ProjectError(f"{repo} is not a git repository") from exc
    if not hooks_dir.is_absolute():
        hooks_dir = repo / hooks_dir
    hook = hooks_dir / ("post-receive" if bare else "post-commit")
    if hook.exists() and MARKER not in hook.read_text(errors="replace") and not force:
        raise ProjectError(
            f"{hook} exists and was not installed by mlcicd",
            hint="add the line from `mlcicd hooks install --print` to it, or pass --force to "
            "replace it",
        )
    hooks_dir.mkdir(parents=True, exist_ok=True)
    tmp = hook.with_name(f".{hook.name}.tmp")
    tmp.write_text(hook_script(url, token_file))
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, hook)
    return hook


def main(argv: list[str]) -> int:
    from mlcicd.daemon.auth import client_headers
    from mlcicd.daemon.info import post_json

    url, repository = argv[0], argv[1]
    token_file = Path(argv[2]) if len(argv) > 2 else None
    status = post_json(
        f"{url.rstrip('/')}/api/notify",
        {"repository": str(Path(repository).resolve())},
        timeout=3,
        headers=client_headers(token_file),
    )
    if 200 <= status < 300:
        print(f"mlcicd: notified {url}", file=sys.stderr)
    elif status == 401:
        where = token_file or "no token file (installed without a project)"
        print(
            f"mlcicd: the service at {url} refused the token ({where}, or $MLCICD_TOKEN); "
            "reinstall the hook "
            "with `mlcicd hooks install` from the project, or run as the user of `mlcicd up`",
            file=sys.stderr,
        )
    else:
        print(
            f"mlcicd: no service answered at {url}; this change is built when `mlcicd up` polls "
            "or runs",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
