"""What an endpoint's directory holds: the names the backend, the supervisor and its workers
share.

The endpoint backend (local, or ``serve`` inside a container) writes the config; the
supervisor reads it and writes the status, its pid and the log; the workers poll the control
files. The names live here, apart from the supervisor, so that a caller that only reads or
writes one of these files does not import the module that runs the endpoint.

    config.json         the serving config (:mod:`mlcicd.serving.config`), re-read on SIGHUP
    status.json         the supervisor's account of the endpoint, written atomically
    supervisor.pid      who launched the supervisor and its process identity (``--detach``)
    run/                one spec per generation of workers (``gen-N.json``)
    logs/endpoint.log   the supervisor's and workers' log lines
    traffic.json        a canary or linear update's share for the new generation
    weights.json        the production variants' weights set by ``set-weights``
    metrics/            per-worker counters (:data:`mlcicd.serving.metrics.METRICS_DIR`)
    run/successor.json  a supervisor of another version taking the socket over
                        (:mod:`mlcicd.serving.handover`)

:data:`LAYOUT_VERSION` numbers what the supervisor shares with the workers it starts (the
connection board, the generation spec, their pipe's events, the metrics files): status.json
records it with the mlcicd version, and a deploy by a different one replaces the supervisor
instead of asking it to start workers it could not talk to.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
PID_FILE = "supervisor.pid"
RUN_DIR = "run"
SUCCESSOR_FILE = "run/successor.json"
# Bump when a supervisor of this version could not run the workers of the previous one (or the
# reverse): the board's size, the generation spec's keys, the events on the status pipe.
LAYOUT_VERSION = 2
LOG_FILE = "logs/endpoint.log"
# The endpoint's control files, which its workers poll: written by the supervisor during a
# canary or linear update, and by `set-weights`.
TRAFFIC_FILE = "traffic.json"  # {"generation": N, "green_percent": p}
WEIGHTS_FILE = "weights.json"  # {"config_name": ..., "weights": {variant: weight}}
