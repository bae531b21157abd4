"""`mlcicd explain` and `models describe` after a real `mlcicd run` of the iris project with
``explain:``: the register stage explains the model in its build environment (shap installed
there), and the commands show the stored report, or explain given rows again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import commit_all
from tests.helpers import as_json, mlcicd

pytestmark = pytest.mark.integration
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_a_run_explains_its_model_and_the_commands_show_it(
    iris_project: Path, tmp_path: Path
) -> None:
    assert mlcicd(iris_project, "explain", "1", catch_exceptions=True).exit_code == 3  # none yet
    config = iris_project / "mlcicd.yaml"
    config.write_text(config.read_text() + "\nexplain:\n  rows: 60\n")
    commit_all(iris_project, "explain")
    result = mlcicd(iris_project, "run", str(iris_project))
    assert result.exit_code == 0, result.output

    report = as_json(mlcicd(iris_project, "explain", "iris-classifier/1", "--json"))
    assert (report["explainer"], report["output"], report["rows"]) == ("linear", "margin", 60)
    assert report["features"] == FEATURES
    assert report["local_accuracy"]["max_error"] <= 1e-6

    shown = mlcicd(iris_project, "explain", "1")
    assert shown.exit_code == 0, shown.output
    assert "linear explainer (Pipeline) on the margin, 60 rows" in shown.stdout
    ranked = sorted(FEATURES, key=lambda f: -report["importance"][f])
    body = shown.stdout.splitlines()[3:]
    assert [line.split()[0] for line in body] == ranked  # most important first, per class

    described = mlcicd(iris_project, "models", "describe", "1")
    assert described.exit_code == 0, described.output
    assert f"top features (mean |SHAP|, linear): {ranked[0]}" in described.stdout

    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(FEATURES) + "\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    again = as_json(mlcicd(iris_project, "explain", "1", "--rows", str(rows), "--json"))
    assert again["rows"] == 2 and again["dataset"]["rows_from"] == str(rows)

    text = tmp_path / "text.csv"
    text.write_text(",".join(FEATURES) + "\n5.1,3.5,1.4,wide\n")
    failed = mlcicd(iris_project, "explain", "1", "--rows", str(text), catch_exceptions=True)
    assert failed.exit_code == 1
    assert "feature 'petal_width' of text.csv holds text ('wide')" in failed.stderr


def test_a_model_version_that_does_not_exist(iris_project: Path) -> None:
    result = mlcicd(iris_project, "explain", "iris-classifier/7", catch_exceptions=True)
    assert result.exit_code == 3
    bad = mlcicd(iris_project, "models", "describe", "latest", catch_exceptions=True)
    assert bad.exit_code == 3 and "'latest' is not a model version" in bad.stderr
