"""The project templates of ``mlcicd init``, wherever mlcicd is installed from.

The repository holds one copy of each template: ``examples/<name>`` (``examples/iris`` is
also the reference project). A wheel carries it as ``mlcicd/templates/<name>`` — setup.py's
``build_py`` copies it in — so an installed mlcicd finds it beside this file; a source
checkout or an editable install finds none there and reads ``examples/<name>`` itself.

Standard library only: setup.py loads this file by its path, before mlcicd is importable,
to copy the template with the same rule that ``mlcicd init`` uses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

DEFAULT = "iris"
NAMES = ("iris", "pipeline")  # examples/<name>; setup.py ships the same

PACKAGED = Path(__file__).resolve().parent
SOURCE = PACKAGED.parents[2] / "examples"  # src/mlcicd/templates -> the repository's examples/

# What a template directory may hold that is not the template: mlcicd's state of a run on
# it, git, caches, build leftovers, virtual environments (also found by their pyvenv.cfg).
IGNORED = (
    ".mlcicd",
    ".git",
    "__pycache__",
    "*.py[co]",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "*.egg-info",
    ".venv",
    "venv",
    ".DS_Store",
)
_ignore_patterns = shutil.ignore_patterns(*IGNORED)


def ignore(directory: str, names: list[str]) -> set[str]:
    """``shutil.copytree``'s ``ignore``: the names in ``directory`` that are not template."""
    ignored = set(_ignore_patterns(directory, names))
    return ignored | {name for name in names if (Path(directory) / name / "pyvenv.cfg").is_file()}


def find_template(name: str = DEFAULT) -> Path | None:
    """The template's directory: the installed package's copy first, the source tree's second."""
    for candidate in (PACKAGED / name, SOURCE / name):
        if (candidate / "mlcicd.yaml").is_file():
            return candidate
    return None
