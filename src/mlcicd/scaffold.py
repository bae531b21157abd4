"""``mlcicd init``: a new project from a template, ready for ``mlcicd run``.

The template (``examples/iris``, see ``mlcicd.templates``) is copied with its pipeline
renamed, and committed in a new git repository unless the directory is already inside one.
Nothing is left half-written: the project is assembled in a staging directory beside the
target and moved into place whole; with ``force`` into a non-empty directory, the files it
moved in (and a repository it created) are removed again if a later step fails.

``force`` never overwrites: the template's files that are missing are added, every file
already there is kept as it is and reported. To take the template's version of a file,
delete yours and run init again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlcicd import git, templates
from mlcicd.config import CONFIG_FILE, MAX_ENDPOINT_NAME, NAME_RE, parse_config
from mlcicd.errors import ProjectError

ENDPOINT_SUFFIX = "-endpoint"
MAX_PIPELINE_NAME = MAX_ENDPOINT_NAME - len(ENDPOINT_SUFFIX)  # its endpoint is <pipeline>-endpoint
DEFAULT_BRANCH = "main"  # the template's `branch:`
FALLBACK_IDENTITY = {"user.name": "mlcicd init", "user.email": "mlcicd@localhost"}


@dataclass
class InitResult:
    path: Path
    template: str
    pipeline: str
    endpoint: str
    branch: str
    created: list[str] = field(default_factory=list)  # template files written, relative paths
    kept: list[str] = field(default_factory=list)  # template files not written: one was there
    repo: Path | None = None  # the enclosing repository when there was one (nothing committed)
    commit: str | None = None  # the initial commit, when init created the repository
    untracked: list[str] = field(default_factory=list)  # files already there, left out of it


def check_pipeline_name(name: str, *, origin: str = "--name") -> None:
    """The rule of ``pipeline:`` in mlcicd.yaml, for a pipeline whose endpoint is
    <name>-endpoint."""
    if NAME_RE.match(name) and len(name) <= MAX_PIPELINE_NAME:
        return
    suggestion = suggest_name(name)
    raise ProjectError(
        f"{name!r} ({origin}) is not a valid pipeline name: use letters, digits and hyphens, "
        f"starting with a letter or digit, at most {MAX_PIPELINE_NAME} characters",
        hint=f"pass --name {suggestion}",
    )


def suggest_name(name: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()[:MAX_PIPELINE_NAME].strip("-")
    return slug if slug and NAME_RE.match(slug) else "my-model"


def init_project(
    dest: Path, *, name: str | None = None, force: bool = False, template: str = templates.DEFAULT
) -> InitResult:
    """Create the project ``dest`` from ``template``; see the module docstring for the rules."""
    dest = dest.expanduser()
    if dest.is_symlink() and not dest.exists():
        raise ProjectError(f"{dest} is a broken symbolic link", hint="choose another DIR")
    dest = dest.resolve()
    if dest.exists() and not dest.is_dir():
        raise ProjectError(f"{dest} exists and is not a directory", hint="choose another DIR")
    if name is None:
        check_pipeline_name(dest.name, origin="the directory's name")
        name = dest.name
    else:
        check_pipeline_name(name)
    source = templates.find_template(template)
    if source is None:
        raise ProjectError(
            f"the {template!r} template is not installed with mlcicd",
            hint="reinstall mlcicd (its wheel carries mlcicd/templates/)",
        )
    existing = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    if existing and not force:
        shown = ", ".join(existing[:5]) + (", …" if len(existing) > 5 else "")
        raise ProjectError(
            f"{dest} is not empty ({shown})",
            hint="choose a new DIR, or pass --force to add the template's missing files "
            "beside these; nothing is overwritten",
        )
    repo = _enclosing_repo(dest)
    branch = (git.current_branch(repo) if repo is not None else None) or DEFAULT_BRANCH
    result = InitResult(dest, template, name, name + ENDPOINT_SUFFIX, branch, repo=repo)

    with _created_dirs(dest.parent) as made_parents:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.init-", dir=dest.parent))
        try:
            _render(source, staging, result)
            if not dest.exists():
                result.created = _files(staging)
                if repo is None:
                    result.commit = _first_commit(staging, None, result)
                os.replace(staging, dest)
            else:  # moved in file by file: renaming over it would strand a shell whose cwd it is
                _merge(staging, dest, result)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        made_parents.clear()  # success: keep them
    return result


def _render(source: Path, staging: Path, result: InitResult) -> None:
    """The template into ``staging`` with the pipeline, endpoint and branch of ``result``."""
    shutil.copytree(source, staging, ignore=templates.ignore, dirs_exist_ok=True)
    config_path = staging / CONFIG_FILE
    text = config_path.read_text(encoding="utf-8")
    template_endpoint = parse_config(text, source=str(source / CONFIG_FILE)).endpoint_name
    for pattern, value in (
        (r"^pipeline:[ \t]*\S+", result.pipeline),
        (r"^branch:[ \t]*\S+", result.branch),
        (r"^[ \t]+endpoint_name:[ \t]*\S+", result.endpoint),
    ):
        text = _set_value(text, pattern, _yaml_scalar(value))
    config = parse_config(text, source=str(result.path / CONFIG_FILE))  # the same rules as `run`
    if (config.pipeline, config.branch, config.endpoint_name) != (
        result.pipeline,
        result.branch,
        result.endpoint,
    ):
        raise AssertionError(f"the template's {CONFIG_FILE} was not renamed as expected")  # a bug
    config_path.write_text(text, encoding="utf-8")
    readme = staging / "README.md"
    if readme.is_file():
        readme.write_text(
            readme.read_text(encoding="utf-8").replace(template_endpoint, result.endpoint),
            encoding="utf-8",
        )


def _set_value(text: str, pattern: str, value: str) -> str:
    """Replace the value of the one line ``pattern`` matches, its trailing comment kept in place."""
    match = re.search(pattern, text, flags=re.MULTILINE)
    if match is None:
        raise AssertionError(
            f"the template's {CONFIG_FILE} has no line matching {pattern!r}"
        )  # a bug
    key = match.group().split(":", 1)[0] + ":"
    rest = text[match.end() :].split("\n", 1)[0]
    comment = rest.lstrip(" \t")
    if comment.startswith("#"):
        column = match.end() + len(rest) - len(comment) - match.start()  # where the comment starts
        line = f"{key} {value}"
        line = line.ljust(column) if len(line) < column - 1 else line + "  "
        return text[: match.start()] + line + comment + text[match.end() + len(rest) :]
    return text[: match.start()] + f"{key} {value}" + text[match.end() :]


def _yaml_scalar(value: str) -> str:
    """``value`` as YAML reads back a string: quoted when it would read as a number or a bool."""
    return value if yaml.safe_load(value) == value else json.dumps(value)


def _merge(staging: Path, dest: Path, result: InitResult) -> None:
    """Move the staged files that ``dest`` lacks into it; undo every move if anything fails."""
    moved: list[Path] = []
    made: list[Path] = []
    created_git = False
    try:
        for rel in _files(staging):
            target = dest / rel
            if _occupied(dest, rel):
                result.kept.append(rel)
                continue
            for parent in reversed(target.relative_to(dest).parents[:-1]):
                if not (dest / parent).exists():
                    (dest / parent).mkdir()
                    made.append(dest / parent)
            os.replace(staging / rel, target)
            moved.append(target)
            result.created.append(rel)
        if result.repo is None:
            created_git = not (dest / ".git").exists()  # never remove one that was there
            project_files = [
                rel for rel in (*result.created, *result.kept) if (dest / rel).is_file()
            ]
            result.commit = _first_commit(dest, project_files, result)
            result.untracked = _untracked(dest)
    except BaseException:
        if created_git:
            shutil.rmtree(dest / ".git", ignore_errors=True)
        for path in reversed(moved):
            with contextlib.suppress(OSError):
                path.unlink()
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()
        result.created.clear()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _occupied(dest: Path, rel: str) -> bool:
    """Whether something (a file, a directory, a link) is at ``rel`` or in place of a parent."""
    path = dest
    for part in rel.split("/"):
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            return True
    return path.exists()


def _first_commit(work_tree: Path, paths: list[str] | None, result: InitResult) -> str | None:
    """A new repository in ``work_tree`` on the result's branch, ``paths`` (None: all) committed."""
    git.git(work_tree, "init", "-q")
    git.git(
        work_tree, "symbolic-ref", "HEAD", f"refs/heads/{result.branch}"
    )  # any git, not only >= 2.28
    for key, fallback in FALLBACK_IDENTITY.items():
        if not _identity_configured(work_tree, key):
            git.git(work_tree, "config", key, fallback)  # only here, so the commit cannot fail
    if paths is None:
        git.git(work_tree, "add", "-A")
    else:
        ignored = _ignored(work_tree, paths)
        paths = [p for p in paths if p not in ignored]
        if not paths:
            return None
        git.git(work_tree, "add", "--", *paths)
    git.git(
        work_tree,
        "commit",
        "-q",
        "-m",
        f"{result.pipeline}: start from the mlcicd {result.template} template",
    )
    return git.git(work_tree, "rev-parse", "HEAD").decode().strip()


def _identity_configured(repo: Path, key: str) -> bool:
    env = (
        ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")
        if key == "user.name"
        else ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")
    )
    if all(os.environ.get(var) for var in env):
        return True
    try:
        return bool(git.git(repo, "config", "--get", key).strip())
    except ProjectError:  # exit 1: not set anywhere
        return False


def _ignored(repo: Path, paths: list[str]) -> set[str]:
    out = git.git(
        repo, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--", *paths
    )
    return {p for p in out.decode(errors="replace").split("\x00") if p}


def _untracked(repo: Path) -> list[str]:
    out = git.git(repo, "ls-files", "-z", "--others", "--exclude-standard", "--directory")
    return sorted(p for p in out.decode(errors="replace").split("\x00") if p)


def _enclosing_repo(dest: Path) -> Path | None:
    """The work tree ``dest`` is (or would be) inside, if any."""
    probe = dest
    while not probe.exists():
        probe = probe.parent
    try:
        return git.repo_root(probe)
    except ProjectError:
        return None


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


@contextlib.contextmanager
def _created_dirs(path: Path) -> Iterator[list[Path]]:
    """Create ``path`` and its missing parents; on failure remove the ones created, unless
    the caller cleared the list (success)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    made = list(missing)  # deepest first
    try:
        yield made
    except BaseException:
        for p in made:
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
