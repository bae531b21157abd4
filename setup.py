"""The one build step pyproject.toml cannot declare: the wheel carries examples/iris, the
template of `mlcicd init`, as mlcicd/templates/iris (see src/mlcicd/templates/__init__.py).

The repository keeps a single copy of the template, in examples/; MANIFEST.in puts it in
the sdist, so a wheel built from the sdist carries it too.
"""

from __future__ import annotations

import importlib.util
import shutil
import types
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
TEMPLATES = ("iris", "pipeline")


def _templates_module() -> types.ModuleType:
    """mlcicd/templates/__init__.py, loaded by its path: mlcicd is not importable yet."""
    spec = importlib.util.spec_from_file_location("_mlcicd_templates", HERE / "src/mlcicd/templates/__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithTemplates(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads examples/ in place
        templates = _templates_module()
        for name in TEMPLATES:
            source = HERE / "examples" / name
            if not (source / "mlcicd.yaml").is_file():
                raise FileNotFoundError(f"{source}/mlcicd.yaml: the {name} template is missing from the source")
            target = Path(self.build_lib) / "mlcicd" / "templates" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=templates.ignore)


setup(cmdclass={"build_py": BuildPyWithTemplates})
