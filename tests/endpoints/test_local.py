"""LocalEndpointBackend end to end: real supervisors, workers, sockets and clients."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mlcicd import __version__, procinfo
from mlcicd.config import AutoscalingConfig
from mlcicd.endpoints import EndpointDescription, local
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import ArtifactError, EndpointError, NotFoundError, PortInUseError
from tests.endpoints.conftest import endpoint_config
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import (
    FULL_HANDLERS,
    INTROSPECTING_HANDLERS,
    MODEL_FN_RAISES,
    NO_HANDLERS,
    PREDICT_FN_RAISES,
    request,
)

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


def status_of(backend: LocalEndpointBackend, name: str) -> dict:
    return json.loads((backend.endpoint_dir(name) / "status.json").read_text())


def processes_of(backend: LocalEndpointBackend, name: str) -> list[tuple[int, int | None]]:
    status = status_of(backend, name)
    return [(status["pid"], status["pid_start_time"])] + [
        (w["pid"], w["start_time"]) for w in status["workers"]
    ]


def none_alive(processes: list[tuple[int, int | None]]) -> bool:
    return not any(procinfo.is_alive(pid, start) for pid, start in processes)


def test_deploy_serves_sklearns_predictions(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    described = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    assert described.status == "InService" and described.config_name == "cfg-1"
    assert described.model_sha256 == iris.sha256 and described.generation == 1
    assert described.url == f"http://127.0.0.1:{described.port}" and procinfo.is_alive(
        described.pid, None
    )
    want = iris.model.predict(iris.X).tolist()

    assert request(described.url, "GET", "/ping").status == 200
    response = request(described.url, body=json.dumps(iris.X.tolist()), headers=JSON)
    assert response.json() == want
    csv = "\n".join(",".join(map(str, row)) for row in iris.X.tolist())
    response = request(
        described.url, body=csv, headers={"Content-Type": "text/csv", "Accept": "text/csv"}
    )
    assert [int(v) for v in response.body.split()] == want

    edir = backend.endpoint_dir("iris")
    assert (edir / "models" / iris.sha256 / "model.joblib").is_file()
    assert (edir / "code" / "cfg-1" / "inference.py").is_file()
    assert "InService" in (edir / "logs" / "endpoint.log").read_text()
    status = status_of(backend, "iris")
    assert {
        "status",
        "pid",
        "port",
        "url",
        "generation",
        "config_name",
        "model_sha256",
        "started_at",
        "failure_reason",
        "last_update_failure",
        "workers",
    } <= status.keys()


def introspect(url: str, rows: np.ndarray, dtype: str = "float64") -> dict:
    body = json.dumps({"instances": rows.tolist(), "dtype": dtype})
    response = request(url, body=body, headers=JSON)
    assert response.status == 200, response.body
    return response.json()


def assert_sklearns_answers(answer: dict, model: object, rows: np.ndarray) -> None:
    assert answer["labels"] == model.predict(rows).tolist()  # type: ignore[attr-defined]
    for key, method in (
        ("probabilities", "predict_proba"),
        ("log_probabilities", "predict_log_proba"),
        ("decision", "decision_function"),
    ):
        np.testing.assert_allclose(answer[key], getattr(model, method)(rows), rtol=0, atol=1e-12)


def test_users_own_handlers_get_the_compiled_model(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    """A user's predict_fn calls the model's methods: the compiled code answers them, on the
    same LogisticRegression object, and float32 rows (not covered) go to scikit-learn."""
    described = backend.deploy(endpoint_config(tmp_path, iris, INTROSPECTING_HANDLERS))
    assert described.url
    methods = ["predict", "predict_proba", "predict_log_proba", "decision_function"]
    assert [v["compiled"] for v in described.variants] == [methods]
    answer = introspect(described.url, iris.X)
    assert answer["isinstance"] is True and answer["bound"] == sorted(methods)
    assert_sklearns_answers(answer, iris.model, iris.X)
    assert_sklearns_answers(introspect(described.url, iris.X[3:4]), iris.model, iris.X[3:4])
    single = iris.X[:5].astype(np.float32)
    assert_sklearns_answers(introspect(described.url, single, "float32"), iris.model, single)


def test_fastpath_off_leaves_the_users_model_alone(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCICD_FASTPATH", "0")
    described = backend.deploy(endpoint_config(tmp_path, iris, INTROSPECTING_HANDLERS))
    assert described.url and [v["compiled"] for v in described.variants] == [[]]
    answer = introspect(described.url, iris.X)
    assert answer["isinstance"] is True and answer["bound"] == []
    assert_sklearns_answers(answer, iris.model, iris.X)


def test_deploy_with_all_four_handlers(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    url = backend.deploy(endpoint_config(tmp_path, iris, FULL_HANDLERS)).url
    assert url
    response = request(url, body=json.dumps({"instances": iris.X[:10].tolist()}), headers=JSON)
    assert response.json()["labels"] == iris.model.predict(iris.X[:10]).tolist()
    assert request(url, body="1,2,3,4", headers={"Content-Type": "text/csv"}).status == 400


def test_code_is_copied_at_deploy(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    config = endpoint_config(tmp_path, iris, NO_HANDLERS)
    url = backend.deploy(config).url
    assert url
    (config.variants[0].code_dir / "inference.py").write_text("raise SystemExit('edited')\n")
    assert (
        "SageMaker's defaults"
        in (backend.endpoint_dir("iris") / "code" / "cfg-1" / "inference.py").read_text()
    )


def test_model_fn_error_fails_the_deploy_and_leaves_nothing_running(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    with pytest.raises(EndpointError, match="RuntimeError: the weights are corrupt") as info:
        backend.deploy(endpoint_config(tmp_path, iris, MODEL_FN_RAISES, workers=2))
    assert "endpoint.log" in info.value.headline
    described = backend.describe("iris")
    assert described.status == "Failed" and "the weights are corrupt" in (
        described.failure_reason or ""
    )
    assert described.url is None and described.pid is None
    assert none_alive(processes_of(backend, "iris"))


def test_a_predict_fn_that_opts_into_batching_and_breaks_fails_the_deploy(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    script = """
    import joblib, os

    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))

    def predict_fn(data, model):
        return model.predict(data)[:1]

    predict_fn.supports_batching = True
    """
    with pytest.raises(EndpointError, match=r"predict_fn of inference\.py declares supports_batch"):
        backend.deploy(endpoint_config(tmp_path, iris, script))
    assert backend.describe("iris").status == "Failed"


def test_broken_update_keeps_the_old_generation_serving(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    with pytest.raises(EndpointError, match=r"still serves cfg-1: .*the weights are corrupt"):
        backend.deploy(endpoint_config(tmp_path, iris, MODEL_FN_RAISES, name="cfg-broken"))
    described = backend.describe("iris")
    assert described.status == "InService" and described.config_name == "cfg-1"
    assert described.generation == 1 and described.pid == first.pid
    assert "the weights are corrupt" in (described.last_update_failure or "")
    assert json.loads((backend.endpoint_dir("iris") / "config.json").read_text())["name"] == "cfg-1"
    response = request(first.url or "", body="[[6.7, 3.0, 5.2, 2.3]]", headers=JSON)
    assert response.json() == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    # The same broken update again fails again (not mistaken for the earlier attempt).
    with pytest.raises(EndpointError, match="the weights are corrupt"):
        backend.deploy(endpoint_config(tmp_path, iris, MODEL_FN_RAISES, name="cfg-broken"))


class Hammer:
    """Clients that keep invoking during an update: one keep-alive, one connection per request."""

    def __init__(self, url: str, rows: list[list[float]]) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.body = json.dumps(rows).encode()
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.answers: set[str] = set()
        self.count = 0
        self.threads = [
            threading.Thread(target=self.run, args=(keep,)) for keep in (True, False, True)
        ]

    def run(self, keep_alive: bool) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            while not self.stop.is_set():
                try:
                    conn.request("POST", "/invocations", body=self.body, headers=JSON)
                    response = conn.getresponse()
                    data = response.read()
                    if response.status != 200:
                        self.failures.append(f"{response.status}: {data[:200]!r}")
                    else:
                        self.answers.add(data.decode())
                    self.count += 1
                except (OSError, http.client.HTTPException) as exc:
                    self.failures.append(repr(exc))
                    conn.close()
                if not keep_alive:
                    conn.close()
        finally:
            conn.close()

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def update_under_load(
    backend: LocalEndpointBackend,
    tmp_path: Path,
    flipped: IrisModel,
    url: str,
    rows: list[list[float]],
    old: list[tuple[int, int | None]],
) -> tuple[Hammer, EndpointDescription]:
    """Deploy cfg-2 (the flipped model) while clients keep invoking ``url``; they stop once
    the ``old`` processes have drained and exited."""
    with Hammer(url, rows) as hammer:
        wait_for("50 answers", lambda: hammer.count > 50)
        second = backend.deploy(
            endpoint_config(tmp_path, flipped, NO_HANDLERS, name="cfg-2", workers=2)
        )
        counted = hammer.count
        wait_for("50 more answers", lambda: hammer.count > counted + 50)
        wait_for("the old processes to exit", lambda: none_alive(old), timeout=60)
        time.sleep(0.3)
    return hammer, second


def test_update_switches_the_model_without_failing_a_request(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    rows = iris.X[::10].tolist()
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    old_workers = processes_of(backend, "iris")[1:]
    hammer, second = update_under_load(
        backend, tmp_path, flipped, first.url or "", rows, old_workers
    )
    assert hammer.failures == []
    assert second.status == "InService" and second.config_name == "cfg-2" and second.generation == 2
    assert (
        second.url == first.url
        and second.pid == first.pid
        and second.model_sha256 == flipped.sha256
    )
    old, new = (
        json.dumps(iris.model.predict(rows).tolist(), separators=(",", ":")),
        json.dumps(flipped.model.predict(rows).tolist(), separators=(",", ":")),
    )
    assert old != new and hammer.answers == {old, new}
    assert request(second.url or "", body=json.dumps(rows), headers=JSON).body.decode() == new
    # What neither the new nor the previous config uses is pruned; those two stay.
    assert {p.name for p in (backend.endpoint_dir("iris") / "models").iterdir()} == {
        iris.sha256,
        flipped.sha256,
    }


def test_redeploying_the_same_config_changes_nothing(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    again = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    assert (again.pid, again.generation, again.port) == (first.pid, first.generation, first.port)


def test_port_in_use(tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} is already in use"):
            backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, port=port))
    described = backend.describe("iris")
    assert described.status == "Failed" and str(port) in (described.failure_reason or "")
    assert none_alive(processes_of(backend, "iris"))


def test_the_server_outlives_the_process_that_started_it(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    code = tmp_path / "code-starter"
    code.mkdir()
    (code / "inference.py").write_text("# defaults\n")
    script = f"""
import sys
from pathlib import Path
from mlcicd.endpoints import EndpointConfig, ProductionVariant
from mlcicd.endpoints.local import LocalEndpointBackend
variant = ProductionVariant(name="AllTraffic", model_data=Path({str(iris.archive)!r}),
    model_sha256={iris.sha256!r}, code_dir=Path({str(code)!r}), entry_point="inference.py",
    python=Path(sys.executable))
described = LocalEndpointBackend(Path({str(backend.root)!r})).deploy(
    EndpointConfig(name="cfg-1", endpoint_name="iris", variants=(variant,), workers=1))
print(described.url)
"""
    starter = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert starter.returncode == 0, starter.stderr
    url = starter.stdout.strip()
    assert backend.describe("iris").status == "InService"
    assert request(url, body="[[6.7, 3.0, 5.2, 2.3]]", headers=JSON).status == 200


def test_delete_stops_everything(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    processes = processes_of(backend, "iris")
    assert len(processes) == 3 and not none_alive(processes)
    backend.delete("iris")
    assert none_alive(processes)
    assert not backend.endpoint_dir("iris").exists()
    with pytest.raises(NotFoundError):
        backend.describe("iris")
    with pytest.raises(NotFoundError):
        backend.delete("iris")


def test_describe_when_the_server_died(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    processes = processes_of(backend, "iris")
    assert first.pid
    os.kill(first.pid, signal.SIGKILL)
    wait_for("the endpoint's processes to exit", lambda: none_alive(processes), timeout=20)
    described = backend.describe("iris")
    assert described.status == "OutOfService" and "no longer running" in (
        described.failure_reason or ""
    )
    assert described.url is None and described.pid is None
    # Deploying again starts a fresh server.
    again = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    assert again.status == "InService" and again.pid != first.pid


def test_describe_guards_against_pid_reuse(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    path = backend.endpoint_dir("iris") / "status.json"
    status = json.loads(path.read_text())
    real = (status["pid"], status["pid_start_time"])
    status["pid"], status["pid_start_time"] = os.getpid(), 1  # a live pid, but not the server
    path.write_text(json.dumps(status))
    try:
        assert backend.describe("iris").status == "OutOfService"
    finally:
        status["pid"], status["pid_start_time"] = real
        path.write_text(json.dumps(status))


def test_list(tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend) -> None:
    assert backend.list() == []
    backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, endpoint="a"))
    backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, endpoint="b"))
    assert [(d.name, d.status) for d in backend.list()] == [("a", "InService"), ("b", "InService")]


def test_moving_a_live_endpoint_to_another_port_is_refused(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    assert first.port
    with pytest.raises(EndpointError, match=f"serves on port {first.port}"):
        backend.deploy(
            endpoint_config(tmp_path, iris, NO_HANDLERS, name="cfg-2", port=first.port + 1)
        )


def test_a_tampered_artifact_is_not_deployed(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    config = endpoint_config(tmp_path, iris, NO_HANDLERS)
    bad = config.variants[0].__class__(**{**config.variants[0].__dict__, "model_sha256": "0" * 64})
    with pytest.raises(ArtifactError, match="sha256"):
        backend.deploy(config.__class__(**{**config.__dict__, "variants": (bad,)}))
    assert not (backend.endpoint_dir("iris") / "status.json").exists()


def test_invalid_names_are_refused(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    with pytest.raises(EndpointError, match="not valid"):
        backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, endpoint="../escape"))
    with pytest.raises(EndpointError, match="not valid"):
        backend.describe("a/b")


def boto3_client(url: str):  # type: ignore[no-untyped-def]
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_boto3_invoke_endpoint(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    described = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    client = boto3_client(described.url or "")
    response = client.invoke_endpoint(
        EndpointName="iris",
        Body=json.dumps(iris.X[:5].tolist()),
        ContentType="application/json",
        Accept="application/json",
        CustomAttributes="trace=42",
    )
    assert json.loads(response["Body"].read()) == iris.model.predict(iris.X[:5]).tolist()
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ContentType"] == "application/json"
    assert response["ResponseMetadata"]["RequestId"]

    npy = client.invoke_endpoint(
        EndpointName="iris",
        Body=json.dumps(iris.X[:3].tolist()),
        ContentType="application/json",
        Accept="application/x-npy",
    )
    import io

    assert (
        np.load(io.BytesIO(npy["Body"].read())).tolist() == iris.model.predict(iris.X[:3]).tolist()
    )

    with pytest.raises(
        client.exceptions.ValidationError, match="Endpoint nope of account local not found"
    ):
        client.invoke_endpoint(
            EndpointName="nope", Body=b"[[1,2,3,4]]", ContentType="application/json"
        )


def test_boto3_model_error_and_the_worker_keeps_serving(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    described = backend.deploy(endpoint_config(tmp_path, iris, PREDICT_FN_RAISES))
    workers_before = processes_of(backend, "iris")
    client = boto3_client(described.url or "")
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(
            EndpointName="iris", Body=b"[[-1, 3, 1, 0]]", ContentType="application/json"
        )
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "negative sepals break the model" in error["OriginalMessage"]
    assert "negative sepals break the model" in str(info.value)

    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="iris", Body=b"1,2", ContentType="text/plain")
    assert info.value.response["OriginalStatusCode"] == 415

    response = client.invoke_endpoint(
        EndpointName="iris", Body=b"[[6.7, 3.0, 5.2, 2.3]]", ContentType="application/json"
    )
    assert (
        json.loads(response["Body"].read()) == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()
    )
    assert processes_of(backend, "iris") == workers_before


def test_autoscaling_starts_within_its_bounds_and_describe_shows_it(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    policy = AutoscalingConfig(
        min_instances=1, max_instances=1, target_invocations_per_instance=60_000
    )
    config = endpoint_config(tmp_path, iris, NO_HANDLERS, workers=3)
    described = backend.deploy(dataclasses.replace(config, autoscaling=policy))
    scaling = described.autoscaling
    assert scaling is not None and scaling["current_instances"] == 1  # max_instances, not 3
    assert (scaling["min_instances"], scaling["max_instances"]) == (1, 1)
    assert scaling["target_invocations_per_instance"] == 60_000 and scaling["last_change"] is None
    assert [w["state"] for w in status_of(backend, "iris")["workers"]] == ["ready"]
    written = json.loads((backend.endpoint_dir("iris") / "config.json").read_text())
    assert written["autoscaling"]["scale_in_cooldown"] == 300


def test_a_redeploy_without_autoscaling_serves_a_fixed_count_again(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    """deploy.autoscaling removed from mlcicd.yaml: the update's generation serves
    ``workers`` and nothing resizes it (SageMaker's registration is the deploy's to lift:
    tests/aws/test_lambda_deploy.py)."""
    policy = AutoscalingConfig(
        min_instances=2, max_instances=2, target_invocations_per_instance=60_000
    )
    config = endpoint_config(tmp_path, iris, NO_HANDLERS, workers=1)
    scaled = backend.deploy(dataclasses.replace(config, autoscaling=policy))
    assert scaled.autoscaling is not None and scaled.autoscaling["current_instances"] == 2
    fixed = backend.deploy(config)
    assert fixed.autoscaling is None
    status = status_of(backend, "iris")
    serving = [w["state"] for w in status["workers"] if w["generation"] == status["generation"]]
    assert serving == ["ready"]  # the scaled generation's two drain meanwhile
    assert status.get("autoscaling") is None
    written = json.loads((backend.endpoint_dir("iris") / "config.json").read_text())
    assert written.get("autoscaling") is None


def test_a_deploy_by_another_version_replaces_the_server_without_failing_a_request(
    tmp_path: Path,
    iris: IrisModel,
    flipped: IrisModel,
    backend: LocalEndpointBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an upgrade the running supervisor is the old code: a deploy replaces it (its
    socket handed over) instead of asking it to start workers it may not understand."""
    rows = iris.X[::10].tolist()
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2))
    recorded = status_of(backend, "iris")
    assert (recorded["mlcicd_version"], recorded["layout_version"]) == (__version__, 2)
    old = processes_of(backend, "iris")
    monkeypatch.setattr(local, "__version__", "9.9.9")  # this deployer: a newer mlcicd
    hammer, second = update_under_load(backend, tmp_path, flipped, first.url or "", rows, old)
    assert hammer.failures == []
    assert second.status == "InService" and second.config_name == "cfg-2"
    assert second.url == first.url and second.pid != first.pid and second.generation == 2
    new = json.dumps(flipped.model.predict(rows).tolist(), separators=(",", ":"))
    assert request(second.url or "", body=json.dumps(rows), headers=JSON).body.decode() == new
    assert not (backend.endpoint_dir("iris") / "run" / "successor.json").exists()


def test_a_failed_replacement_leaves_the_old_server_serving(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
    monkeypatch.setattr(local, "__version__", "9.9.9")
    with pytest.raises(
        EndpointError,
        match=rf"iris still runs on mlcicd {__version__} \(serving layout 2\): its replacement "
        r"by this mlcicd 9\.9\.9 \(serving layout 2\) failed: .*the weights are corrupt",
    ):
        backend.deploy(endpoint_config(tmp_path, iris, MODEL_FN_RAISES, name="cfg-broken"))
    described = backend.describe("iris")
    assert described.status == "InService" and described.pid == first.pid
    assert described.config_name == "cfg-1"
    assert json.loads((backend.endpoint_dir("iris") / "config.json").read_text())["name"] == "cfg-1"
    response = request(first.url or "", body="[[6.7, 3.0, 5.2, 2.3]]", headers=JSON)
    assert response.json() == iris.model.predict([[6.7, 3.0, 5.2, 2.3]]).tolist()


def test_a_server_too_old_to_hand_over_is_refused_with_the_command_to_run(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    """A supervisor from before the handover records no version: a deploy says what to do
    rather than fail in its workers ("mmap length is greater than file size")."""
    edir = backend.endpoint_dir("iris")
    edir.mkdir(parents=True)
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        status = {"status": "InService", "pid": old.pid, "port": 1}
        status["pid_start_time"] = procinfo.start_time(old.pid)
        (edir / "status.json").write_text(json.dumps(status))
        (edir / "config.json").write_text('{"name": "cfg-0"}')
        with pytest.raises(
            EndpointError,
            match=r"iris is served by an older mlcicd \(it records no version\), which cannot "
            r"start the workers of this mlcicd .* mlcicd endpoints delete iris, then deploy again",
        ):
            backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS))
        assert json.loads((edir / "config.json").read_text()) == {"name": "cfg-0"}
        assert old.poll() is None
    finally:
        old.kill()
        old.wait()
