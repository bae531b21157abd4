"""The orchestrator Lambdas' deployment package: mlcicd and PyYAML, one reproducible zip.

Lambda's Python runtime brings boto3, so it is left out. PyYAML goes in as pure Python, its
C extension left out: that is built for one platform, and PyYAML falls back without it.
The zip is reproducible — sorted names, fixed timestamps and modes, no bytecode — so the
same code always has the same sha256; ``mlcicd aws deploy`` uploads it under that digest,
and CloudFormation updates the functions exactly when their code changed.
"""

from __future__ import annotations

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


def package_files() -> list[tuple[str, Path]]:
    """``(name in the zip, file)`` for every file of the package, sorted."""
    files: list[tuple[str, Path]] = []
    for package in PACKAGES:
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
