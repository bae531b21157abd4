"""Work off the hot path on bounded queues: when a queue is full the request is still
answered, and what could not be queued is dropped and counted (``ShadowDropped``,
``CaptureDropped``) — exactly once per dropped item."""

from __future__ import annotations

import json
from pathlib import Path

from mlcicd.serving.config import CaptureSpec, ServingConfig, VariantSpec
from mlcicd.serving.shadow import QUEUE_SIZE
from mlcicd.serving.worker import build_app
from tests.helpers import IrisModel, wait_for
from tests.serving.helpers import NO_HANDLERS, call_asgi, write_code

JSON = {"Content-Type": "application/json"}
ROW = json.dumps([[5.1, 3.5, 1.4, 0.2]])

# A shadow whose predictions wait while the file ``hold`` exists, saying when one does.
HELD_SHADOW = """
    import os
    import time

    import joblib

    HERE = os.path.dirname(__file__)


    def model_fn(model_dir):
        return joblib.load(os.path.join(model_dir, "model.joblib"))


    def predict_fn(data, model):
        open(os.path.join(HERE, "waiting"), "w").close()
        while os.path.exists(os.path.join(HERE, "hold")):
            time.sleep(0.01)
        return model.predict(data)
"""


def variant(name: str, model: IrisModel, code: Path) -> VariantSpec:
    return VariantSpec(name=name, model_dir=str(model.model_dir), code_dir=str(code))


def test_a_full_shadow_queue_drops_and_counts_and_production_answers(
    tmp_path: Path, iris: IrisModel
) -> None:
    shadow_code = write_code(tmp_path / "shadow", HELD_SHADOW)
    hold = shadow_code / "hold"
    hold.touch()
    config = ServingConfig(
        name="cfg",
        variants=(variant("AllTraffic", iris, write_code(tmp_path / "prod", NO_HANDLERS)),),
        shadow=variant("Shadow", iris, shadow_code),
    )
    app = build_app(config, state_dir=tmp_path / "state")
    assert app.shadow is not None
    try:
        assert call_asgi(app, body=ROW, headers=JSON).status == 200
        # The shadow's thread holds that first copy: from now on nothing leaves the queue.
        wait_for("the shadow to take the first copy", (shadow_code / "waiting").exists, 30)
        for _ in range(QUEUE_SIZE + 3):  # the queue's worth fits, three do not
            assert call_asgi(app, body=ROW, headers=JSON).status == 200
        assert app.metrics.counters["ShadowDropped"] == 3
        assert app.metrics.counters.get("CaptureDropped", 0) == 0  # its records all queued
    finally:
        hold.unlink()
        app.shadow.close()
    # Released, the shadow answers every copy it kept, and none of those counts as dropped.
    shadow_metrics = app.metrics.variant("cfg", "Shadow")
    assert shadow_metrics.invocations == 1 + QUEUE_SIZE
    assert app.metrics.counters["ShadowDropped"] == 3


def test_a_full_capture_queue_drops_and_counts_and_the_request_is_answered(
    tmp_path: Path, iris: IrisModel
) -> None:
    config = ServingConfig(
        name="cfg",
        variants=(variant("AllTraffic", iris, write_code(tmp_path / "prod", NO_HANDLERS)),),
        capture=CaptureSpec(destination=str(tmp_path / "capture"), queue_size=2),
    )
    app = build_app(config, state_dir=tmp_path / "state")
    assert app.capture is not None
    # Its writer stopped, nothing empties the queue: the state a writer stuck on a slow store
    # leaves it in.
    app.capture.close()
    for _ in range(5):
        assert call_asgi(app, body=ROW, headers=JSON).status == 200
    assert app.metrics.counters["CaptureDropped"] == 3  # two fit in the queue
    assert app.capture.queue.qsize() == 2
