"""`mlcicd transform` on a registered model, as a user types it: the model's commit, code and
build environment found from the registry, the job recorded, listed, described, in lineage;
a record the model refuses fails the job with the object and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlcicd.project import Project
from tests.conftest import git, make_repo
from tests.helpers import IrisModel, as_json, mlcicd

pytestmark = pytest.mark.integration  # a build environment, worker processes

SPECIES = ("setosa", "versicolor", "virginica")


def test_transform_a_registered_model_list_describe_and_lineage(
    tmp_path: Path, iris: IrisModel
) -> None:
    root = make_repo(tmp_path / "iris")
    project = Project(root)
    ref = project.store.put_file(iris.archive, project.config.store.models_bucket, "m/1.tar.gz")
    project.state.register_model_package(
        group_name="iris-classifier",
        status="Approved",
        model_uri=ref.uri,
        model_sha256=ref.sha256,
        metrics={},
        training_job=None,
        build_digest=None,
        commit_sha=git(root, "rev-parse", "HEAD").strip(),
        run_id=None,
        lineage={
            "commit": {
                "commit": git(root, "rev-parse", "HEAD").strip(),
                "tree": git(root, "rev-parse", "HEAD^{tree}").strip(),
            }
        },
    )
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a.csv").write_text(
        "".join(f"r{i},{','.join(map(str, x))}\n" for i, x in enumerate(iris.X))
    )

    result = mlcicd(
        root,
        "transform",
        "iris-classifier",
        "--input",
        str(batch),
        "--output",
        str(tmp_path / "out"),
        "--input-filter",
        "$[1:]",
        "--join-source",
        "Input",
        "--output-filter",
        "$[0,-1]",
        "--job-name",
        "nightly",
    )

    assert result.exit_code == 0, result.output
    assert "nightly Completed: 1 object(s), 150 rows in, 150 rows out" in result.stdout
    expected = [f"r{i},{SPECIES[p]}" for i, p in enumerate(iris.model.predict(iris.X))]
    assert (tmp_path / "out" / "a.csv.out").read_text().splitlines() == expected
    listed = as_json(mlcicd(root, "transforms", "list", "--json"))
    assert [(j["name"], j["status"], j["rows_out"]) for j in listed] == [
        ("nightly", "Completed", 150)
    ]
    assert "nightly" in mlcicd(root, "transforms", "list").stdout
    shown = mlcicd(root, "transforms", "describe", "nightly").stdout
    assert "status          Completed" in shown and "join_source=Input" in shown
    described = as_json(mlcicd(root, "transforms", "describe", "nightly", "--json"))
    assert described["model_sha256"] == iris.sha256 and described["model_version"] == 1
    assert described["settings"]["join_source"] == "Input"
    lineage = as_json(mlcicd(root, "lineage", "iris-classifier/1", "--json"))
    assert [j["name"] for j in lineage["transform_jobs"]] == ["nightly"]

    (batch / "a.csv").write_text("5.1,3.5,1.4,0.2\n5.1,3.5,x,0.2\n")
    failed = mlcicd(
        root,
        "transform",
        "iris-classifier/1",
        "--input",
        str(batch),
        "--output",
        str(tmp_path / "out2"),
        "--job-name",
        "broken",
    )
    assert failed.exit_code == 1
    assert "input_fn rejected a record in a.csv, line 2:" in failed.output
    record = as_json(mlcicd(root, "transforms", "describe", "broken", "--json"))
    assert record["status"] == "Failed" and "a.csv, line 2" in record["failure_reason"]
    assert not (tmp_path / "out2" / "a.csv.out").exists()

    unknown = mlcicd(root, "transform", "nobody", "--input", str(batch), "--output", "o")
    assert unknown.exit_code != 0 and "MODEL 'nobody' is neither" in unknown.output
