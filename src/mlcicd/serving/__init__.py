"""The endpoint server: the SageMaker inference-container contract over a real HTTP server.

    config.py      the serving config (config.json) the supervisor and its workers read
    codecs.py      request/response bodies: JSON, CSV, NPY, JSON Lines; content negotiation
    handlers.py    the user's inference.py: model_fn / input_fn / predict_fn / output_fn
    app.py         the raw ASGI app: /ping, /invocations, /endpoints/{name}/invocations
    worker.py      one worker process: load the model, then serve the inherited socket
    watchdog.py    a worker whose handler hangs: heartbeat, answer the stuck requests, exit
    supervisor.py  one endpoint's long-lived process: the socket, generations of workers
    rollout.py     how an update replaces the serving generation: at once, or shifting traffic
                   step by step under alarms, rolled back when one trips
    status.py      status.json, as the supervisor writes it
    generation.py  worker processes as the supervisor sees them (start, events, exit)
    container.py   ``serve`` inside a SageMaker container, on top of the supervisor
    model_check.py the container serves only the model.tar.gz of MLCICD_MODEL_SHA256
    procinfo.py    is a recorded pid still the process we started?
    logs.py        one log line per event, on stderr

Everything here runs under the *model's* interpreter, which has numpy, uvicorn, httptools
and orjson but none of the CLI's dependencies: import only the stdlib, those four and
``mlcicd.errors`` / ``mlcicd.fsutil`` / ``mlcicd.archive`` (a test holds us to it).
"""
