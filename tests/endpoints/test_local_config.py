"""Readying a local endpoint's directory: models extracted once, and whole."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlcicd.archive import MARKER, extracted_sha256, pack_dir
from mlcicd.endpoints.base import EndpointConfig, ProductionVariant
from mlcicd.endpoints.local_config import serving_config
from mlcicd.errors import ArtifactError


def _config(tmp_path: Path) -> EndpointConfig:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"weights")
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return None\n")
    sha256 = pack_dir(model, tmp_path / "model.tar.gz")
    variant = ProductionVariant(
        name="AllTraffic",
        model_data=tmp_path / "model.tar.gz",
        model_sha256=sha256,
        code_dir=code,
        entry_point="inference.py",
        python=Path(sys.executable),
    )
    return EndpointConfig(name="c1", endpoint_name="iris", variants=(variant,))


def test_a_model_tree_a_crash_cut_short_is_extracted_again(tmp_path: Path) -> None:
    config = _config(tmp_path)
    sha256 = config.variants[0].model_sha256
    partial = tmp_path / "endpoint" / "models" / sha256
    partial.mkdir(parents=True)
    (partial / "model.joblib").write_bytes(b"wei")  # what a crash mid-extraction leaves
    serving = serving_config(tmp_path / "endpoint", config, port=8080, in_use=False)
    model_dir = Path(serving.variants[0].model_dir)
    assert model_dir == partial.resolve()
    assert (model_dir / "model.joblib").read_bytes() == b"weights"
    assert extracted_sha256(model_dir) == sha256


def test_a_marked_tree_is_not_extracted_again(tmp_path: Path) -> None:
    config = _config(tmp_path)
    serving_config(tmp_path / "endpoint", config, port=8080, in_use=False)
    config.variants[0].model_data.write_bytes(b"tampered")  # would be refused if read again
    serving = serving_config(tmp_path / "endpoint", config, port=8080, in_use=True)
    assert (Path(serving.variants[0].model_dir) / MARKER).is_file()


def test_a_tampered_model_is_refused_before_it_is_extracted(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.variants[0].model_data.write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="was changed after it was recorded"):
        serving_config(tmp_path / "endpoint", config, port=8080, in_use=False)
    assert list((tmp_path / "endpoint" / "models").iterdir()) == []
