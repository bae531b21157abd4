"""The endpoint server: the SageMaker inference-container contract over a real HTTP server.

    config.py      the serving config (config.json) the supervisor and its workers read
    layout.py      what an endpoint's directory holds: config, status, pid, log, control files
    codecs.py      request/response bodies: JSON, CSV, NPY, JSON Lines; content negotiation
    handlers.py    the user's inference.py: model_fn / input_fn / predict_fn / output_fn
    app.py         the raw ASGI app: /ping, /invocations, /endpoints/{name}/invocations
    fleet.py       the traffic split inside a worker: production variants drawn by weight
    responses.py   one ASGI response; the error shapes of the container and Runtime paths
    direct.py      the endpoint's own routes answered from the protocol, below uvicorn's cycle
    worker.py      one worker process: load the model, then serve the inherited socket
    watchdog.py    a worker whose handler hangs: heartbeat, answer the stuck requests, exit
    supervisor.py  one endpoint's long-lived process: the socket, generations of workers
    workers.py     its workers: started, replaced with backoff, killed when stalled, retired
    sockets.py     the listening socket: bound, handed over (LISTEN_FDS) or inherited
    handover.py    the socket moved to a supervisor of another mlcicd version, no request lost
    rollout.py     how an update replaces the serving generation: at once, or shifting traffic
                   step by step under alarms, rolled back when one trips
    autoscale.py   target tracking: how many workers should serve the load now, and why
    status.py      status.json, as the supervisor writes it (the supervisor hands itself over)
    generation.py  worker processes as the supervisor sees them (start, events, exit)
    container.py   ``serve`` inside a SageMaker container, on top of the supervisor
    model_check.py the container serves only the model.tar.gz of MLCICD_MODEL_SHA256
    balance.py     spreads connections evenly over the workers of one listening socket
    batching.py    adaptive micro-batching: concurrent requests share one predict_fn call
    background.py  a bounded queue drained by one daemon thread: work off the hot path
    capture.py     data capture: sampled requests and responses as JSON Lines
    shadow.py      the shadow variant: a copy of live traffic, answered off the hot path
    explainers.py  the SHAP explainer chosen from the model (tree, linear, kernel): one code
                   for the register-time report and the endpoint
    explanations.py  online explanations in SageMaker Clarify's contract, one explainer per
                   variant built at load; only requests that ask reach it
    clarify.py     the ClarifyExplainerConfig read and checked (no explainer, no handlers:
                   checking a serving config imports only this)
    metrics.py     SageMaker's endpoint metrics, counted per worker, summed over all
    logs.py        one log line per event, on stderr

The default predict_fn's lean predictors are the model compiler's, :mod:`mlcicd.compiler`.
Everything here runs under the *model's* interpreter, which has numpy, uvicorn, httptools
and orjson but none of the CLI's dependencies: import only the stdlib, those four,
``mlcicd.errors`` / ``fsutil`` / ``archive`` / ``procinfo`` / ``process``, the artifact store
(capture) and the compiler (a test, tests/serving/test_imports.py, holds us to it); shap,
scikit-learn and jmespath only inside the explainer's functions, when the endpoint explains
online (``explain.online`` puts them in the model's environment).
"""
