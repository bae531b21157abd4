"""Production variants, weights changed live, the shadow variant, data capture and metrics."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from mlcicd.endpoints import DataCapture, EndpointConfig, ProductionVariant
from mlcicd.endpoints.local import LocalEndpointBackend
from mlcicd.errors import EndpointError
from tests.endpoints.conftest import endpoint_config
from tests.endpoints.test_updates import ROWS, LoadProcess, answer
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import CONTEXT_HANDLERS, NO_HANDLERS, request, write_code

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}


def variant(tmp_path: Path, name: str, model: IrisModel, weight: float = 1.0) -> ProductionVariant:
    return ProductionVariant(
        name=name,
        model_data=model.archive,
        model_sha256=model.sha256,
        code_dir=write_code(tmp_path / f"code-{name}", NO_HANDLERS),
        entry_point="inference.py",
        python=Path(sys.executable),
        weight=weight,
    )


def ab_config(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, **kwargs: object
) -> EndpointConfig:
    return EndpointConfig(
        name="ab-1",
        endpoint_name="iris",
        workers=2,
        drain_timeout=10.0,
        variants=(variant(tmp_path, "A", iris), variant(tmp_path, "B", flipped)),
        **kwargs,  # type: ignore[arg-type]
    )


def boto3_client(url: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


def test_set_weights_moves_traffic_without_failing_a_request(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    described = backend.deploy(ab_config(tmp_path, iris, flipped))
    assert [(v["name"], v["weight"]) for v in described.variants] == [("A", 1.0), ("B", 1.0)]
    url = described.url or ""
    with LoadProcess(url, tmp_path / "load.json") as load:
        stats = load.more(100)
        assert stats["variants"].keys() == {"A", "B"}
        described = backend.set_weights("iris", {"A": 0.0})
        assert [(v["name"], v["weight"]) for v in described.variants] == [("A", 0.0), ("B", 1.0)]
        applied(backend, "'A': 0(?:\\.0)?[,}]")  # by both workers (they poll weights.json)
        before = load.more(10)["variants"]
        after = load.more(200)["variants"]
        stats = load.stop()
    assert stats["failed"] == 0, stats["failures"]
    assert after["A"] == before["A"] and after["B"] > before["B"] + 150

    # The distribution follows the weights (3:1 over 400 requests: far from the edges).
    backend.set_weights("iris", {"A": 3, "B": 1})
    applied(backend, "'A': 3(?:\\.0)?[,}]")
    seen = Counter(_variant(url) for _ in range(400))
    assert 240 < seen["A"] < 360 and seen["A"] + seen["B"] == 400

    with pytest.raises(EndpointError, match="has no variant C"):
        backend.set_weights("iris", {"C": 1})
    with pytest.raises(EndpointError, match="at least one variant"):
        backend.set_weights("iris", {"A": 0, "B": 0})


def applied(backend: LocalEndpointBackend, weights: str, workers: int = 2) -> None:
    """Wait until each of the ``workers`` has logged applying ``weights`` (a regex)."""
    line = re.compile(r"\[(\d+)\] INFO \S+: traffic weights: \{.*" + weights)

    def pids() -> set[str]:
        return set(line.findall(backend.log_path("iris").read_text()))

    wait_for(f"{workers} workers applying {weights}", lambda: len(pids()) >= workers, 30)


def _variant(url: str) -> str:
    return request(url, body=json.dumps(ROWS), headers=JSON).headers[
        "x-amzn-invoked-production-variant"
    ]


def test_boto3_target_variant_custom_attributes_and_inference_id(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    config = ab_config(tmp_path, iris, flipped)
    b = replace(config.variants[1], code_dir=write_code(tmp_path / "ctx", CONTEXT_HANDLERS))
    capture_dir = tmp_path / "capture"
    config = replace(
        config, variants=(config.variants[0], b), data_capture=DataCapture(destination=capture_dir)
    )
    described = backend.deploy(config)
    client = boto3_client(described.url or "")
    for target, model in (("A", iris), ("B", flipped)):
        response = client.invoke_endpoint(
            EndpointName="iris",
            Body=json.dumps(ROWS),
            ContentType="application/json",
            TargetVariant=target,
            CustomAttributes="trace=7",
            InferenceId=f"id-{target}",
        )
        assert response["InvokedProductionVariant"] == target
        assert response["Body"].read().decode() == answer(model)
        # Only B's handler (it takes a context) answers custom attributes.
        assert response.get("CustomAttributes") == ("seen=trace=7" if target == "B" else None)
    with pytest.raises(client.exceptions.ValidationError, match="Variant C does not exist"):
        client.invoke_endpoint(EndpointName="iris", Body=b"[1]", TargetVariant="C")
    records = wait_for(
        "2 capture records", lambda: len(r := _records(capture_dir / "iris")) == 2 and r, timeout=30
    )
    by_id = {r["eventMetadata"]["inferenceId"]: r for r in records}
    assert by_id.keys() == {"id-A", "id-B"}
    assert by_id["id-B"]["eventMetadata"]["variant"] == "B"
    assert by_id["id-B"]["captureData"]["endpointOutput"]["data"] == answer(flipped)


def _records(root: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_data_capture_writes_sagemakers_record_shape(
    tmp_path: Path, iris: IrisModel, backend: LocalEndpointBackend
) -> None:
    config = replace(
        endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2),
        data_capture=DataCapture(sampling_percentage=50.0),
    )
    url = backend.deploy(config).url or ""
    for i in range(100):
        assert (
            request(
                url,
                body=json.dumps(ROWS),
                headers={**JSON, "X-Amzn-SageMaker-Inference-Id": f"r{i}"},
            ).status
            == 200
        )
    root = backend.endpoint_dir("iris") / "data-capture" / "iris" / "AllTraffic"
    markers = iter(range(10_000))

    def flushed() -> bool:
        """Each writer's queue is in order: once a later request's record is in a worker's
        file, all of that worker's sampled records are written."""
        headers = {**JSON, "X-Amzn-SageMaker-Inference-Id": f"m{next(markers)}"}
        assert request(url, body=json.dumps(ROWS), headers=headers).status == 200
        writers = {
            path.stem.split("-", 3)[3]
            for path in root.rglob("*.jsonl")
            if '"inferenceId":"m' in path.read_text()
        }
        return len(writers) == 2

    wait_for("a later record from both workers", flushed, timeout=60)
    records = [r for r in _records(root) if r["eventMetadata"]["inferenceId"].startswith("r")]
    assert 20 < len(records) < 80  # about half, sampled
    record = records[0]
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": json.dumps(ROWS),
        "encoding": "JSON",
    }
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert record["captureData"]["endpointOutput"]["data"] == answer(iris)
    meta = record["eventMetadata"]
    assert (
        meta["inferenceId"].startswith("r")
        and meta["eventId"]
        and meta["inferenceTime"].endswith("Z")
    )
    # SageMaker's layout: <endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    path = next(root.rglob("*.jsonl")).relative_to(root)
    assert len(path.parts) == 5


def test_shadow_variant_gets_a_copy_and_never_answers(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    config = endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2)
    config = replace(config, shadow=variant(tmp_path, "Shadow", flipped))
    url = backend.deploy(config).url or ""
    for _ in range(30):
        response = request(url, body=json.dumps(ROWS), headers=JSON)
        assert response.body.decode() == answer(iris)
        assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    root = backend.endpoint_dir("iris") / "data-capture" / "iris" / "Shadow"
    records = wait_for(
        "30 shadow capture records", lambda: len(r := _records(root)) == 30 and r, timeout=30
    )
    record = records[0]
    assert record["eventMetadata"]["shadowOf"] == "AllTraffic"
    assert record["eventMetadata"]["productionOutput"]["data"] == answer(iris)
    assert record["captureData"]["endpointOutput"]["data"] == answer(flipped)
    assert record["eventMetadata"]["shadowModelLatencyMs"] >= 0
    summary = wait_for(
        "30 shadow invocations counted",
        lambda: (
            (m := backend.metrics("iris"))["variants"].get("Shadow", {}).get("Invocations") == 30
            and m
        ),
        timeout=30,
    )
    assert summary["variants"]["AllTraffic"]["Invocations"] == 30


def test_metrics_are_summed_over_workers_and_generations(
    tmp_path: Path, iris: IrisModel, flipped: IrisModel, backend: LocalEndpointBackend
) -> None:
    url = backend.deploy(endpoint_config(tmp_path, iris, NO_HANDLERS, workers=2)).url or ""
    for _ in range(40):  # a new connection each: the kernel spreads them over both workers
        assert request(url, body=json.dumps(ROWS), headers=JSON).status == 200
    for _ in range(5):
        assert request(url, body="[[1, 2]]", headers=JSON).status == 400
    backend.deploy(endpoint_config(tmp_path, flipped, NO_HANDLERS, name="cfg-2", workers=2))
    for _ in range(10):
        assert request(url, body=json.dumps(ROWS), headers=JSON).status == 200

    def scraped() -> str | None:
        text = request(url, "GET", "/metrics").body.decode()
        return text if 'Invocations{endpoint="iris",variant="AllTraffic"} 55' in text else None

    text = wait_for(
        "a scrape counting every request", scraped, timeout=30
    )  # one scrape, every worker of both generations
    assert 'Invocation4XXErrors{endpoint="iris",variant="AllTraffic"} 5' in text
    assert 'ModelLatency_count{endpoint="iris",variant="AllTraffic"} 50' in text
    # The files the CLI reads lag the live counts by at most a flush interval (0.5 s).
    summary = wait_for(
        "the invocations counted",
        lambda: (
            (m := backend.metrics("iris", window=300)["variants"]["AllTraffic"])["Invocations"]
            == 55
            and m
        ),
        timeout=30,
    )
    assert summary["Invocation4XXErrors"] == 5
    assert (
        summary["ModelLatencyp50_ms"] > 0
        and summary["ModelLatencyp99_ms"] >= summary["ModelLatencyp50_ms"]
    )
