"""The orchestrator Lambdas' deployment package: mlcicd and PyYAML, one reproducible zip.

Of mlcicd, only the modules the handlers import go in — found by reading the import
statements of ``mlcicd.aws.lambdas`` and of everything they import (function-level imports
included), so the pipeline's stages, the endpoint server and the CLI stay out.
Lambda's Python runtime brings boto3, so it is left out. PyYAML goes in as pure Python, its
C extension left out: that is built for one platform, and PyYAML falls back without it.
The zip is reproducible — sorted names, fixed timestamps and modes, no bytecode — so the
same code always has the same sha256; ``mlcicd aws deploy`` uploads it under that digest,
and CloudFormation updates the functions exactly when their code changed.
"""

from __future__ import annotations

import ast
import importlib.util
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mlcicd.errors import ArtifactError
from mlcicd.fsutil import atomic_open, sha256_file

PACKAGES = (
    "mlcicd",
    "yaml",
)  # everything the handlers import beyond the standard library and boto3
HANDLERS = "mlcicd.aws.lambdas"  # every module of this package, and what they import
_DATA_FILES = ("py.typed",)
_EPOCH = (1980, 1, 1, 0, 0, 0)
LAMBDA_SIZE_LIMIT = 50 * 1024 * 1024  # a zip given to Lambda directly (unzipped: 250 MB)


@dataclass(frozen=True)
class LambdaPackage:
    path: Path
    sha256: str
    size: int
    files: int

    @property
    def key(self) -> str:
        """The S3 key it is uploaded under: content-addressed, so a new key means new code."""
        return f"mlcicd/lambdas-{self.sha256[:16]}.zip"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            f"cannot find the {name} package to put in the Lambda package",
            hint=f"install it in this environment (pip install {name})",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _module_file(root: Path, module: str) -> Path | None:
    """The file of ``module`` (dotted, under the package at ``root``), or None."""
    parts = module.split(".")[1:]
    package = root.joinpath(*parts, "__init__.py")
    if package.is_file():
        return package
    plain = root.joinpath(*parts[:-1], f"{parts[-1]}.py") if parts else None
    return plain if plain is not None and plain.is_file() else None


def _imported(path: Path, package: str) -> set[str]:
    """The ``package`` modules that ``path`` imports, anywhere in it (mlcicd imports absolutely;
    a name imported from a module is tried as a submodule too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == package or m.startswith(package + ".")}


def handler_modules() -> dict[str, Path]:
    """Every mlcicd module the Lambdas' handlers can import, with its package ``__init__``s."""
    root = _package_dir("mlcicd")
    lambdas = _package_dir(HANDLERS)
    todo = [HANDLERS] + [
        f"{HANDLERS}.{p.stem}" for p in sorted(lambdas.glob("*.py")) if p.stem != "__init__"
    ]
    found: dict[str, Path] = {}
    while todo:
        module = todo.pop()
        if module in found:
            continue
        path = _module_file(root, module)
        if path is None:  # a name imported from a module, not a module itself
            continue
        found[module] = path
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages
        todo.extend(_imported(path, "mlcicd"))
    return found


def package_files() -> list[tuple[str, Path]]:
    """``(name in the zip, file)`` for every file of the package, sorted."""
    files: list[tuple[str, Path]] = []
    mlcicd_root = _package_dir("mlcicd")
    for path in handler_modules().values():
        files.append(((Path("mlcicd") / path.relative_to(mlcicd_root)).as_posix(), path))
    files.extend(
        ((Path("mlcicd") / name).as_posix(), mlcicd_root / name)
        for name in _DATA_FILES
        if (mlcicd_root / name).is_file()
    )
    for package in PACKAGES[1:]:
        root = _package_dir(package)
        for path in root.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix == ".py" or path.name in _DATA_FILES:
                files.append(((Path(package) / path.relative_to(root)).as_posix(), path))
    return sorted(files)


def build_lambda_package(dest: Path) -> LambdaPackage:
    """Write the package to ``dest`` (atomically); return its digest."""
    files = package_files()
    with atomic_open(dest, "wb") as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    size = dest.stat().st_size
    if size > LAMBDA_SIZE_LIMIT:  # pragma: no cover - mlcicd is far below it
        raise ArtifactError(
            f"the Lambda package is {size} bytes; Lambda accepts {LAMBDA_SIZE_LIMIT}"
        )
    return LambdaPackage(path=dest, sha256=sha256_file(dest), size=size, files=len(files))


__all__ = ["PACKAGES", "LambdaPackage", "build_lambda_package", "package_files"]
