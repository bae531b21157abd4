"""The tables of the state database, in one place, and how an older database catches up.

A database records its schema in ``PRAGMA user_version``. Opening one that is older runs
:data:`SCHEMA` (every statement is ``IF NOT EXISTS``, so the tables a later schema added
appear and the others stay as they are) and adds :data:`ADDED_COLUMNS` to the tables of
schema 1 — one transaction, in :mod:`mlcicd.state.db`. A database newer than
:data:`SCHEMA_VERSION` is refused, never written.

Versions:

1. runs, stage executions, training jobs, the model registry, endpoints and their configs
2. the run queue (:data:`ADDED_COLUMNS`), webhook deliveries, approvals, events, endpoint
   history
3. model versions' data-quality baselines
4. monitoring executions of endpoints' schedules
5. the digests of webhook bodies, so a replay under a new delivery id is known
6. processing jobs: the steps of ``processing:``, their outputs and reports
7. batch transform jobs
8. endpoint metrics per minute (what ``/metrics`` counts), for the dashboard's charts
"""

from __future__ import annotations

SCHEMA_VERSION = 8

# --- runs and the queue (runs.py, queue.py) ---------------------------------------------------

RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline        TEXT NOT NULL,
    project_dir     TEXT NOT NULL,
    -- Queued | Running | WaitingForApproval | Succeeded | Failed | Stopped | Superseded
    status          TEXT NOT NULL,
    commit_sha      TEXT,
    branch          TEXT,
    author          TEXT,
    message         TEXT,
    dirty           INTEGER NOT NULL DEFAULT 0,
    forced          INTEGER NOT NULL DEFAULT 0,
    pid             INTEGER,
    pid_start       INTEGER,                -- with pid: the process's identity (pids are reused)
    started_at      REAL NOT NULL,
    ended_at        REAL,
    failed_stage    TEXT,
    failure_reason  TEXT,
    ref             TEXT,                   -- what was asked to run (queued runs)
    -- {"kind": "webhook" | "hook" | "poll" | "retry" | "rollback", …}
    trigger         TEXT NOT NULL DEFAULT '{}',
    queued_at       REAL,
    retry_of        INTEGER
);
CREATE TABLE IF NOT EXISTS stage_executions (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    stage       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    -- Pending | Running | Succeeded | Cached | Failed | Stopped | Skipped
    status      TEXT NOT NULL,
    started_at  REAL,
    ended_at    REAL,
    message     TEXT,
    log_path    TEXT,
    outputs     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, stage)
);
"""

# Columns schema 2 added to the runs of schema 1, as (table, column, declaration).
ADDED_COLUMNS = (
    ("runs", "ref", "TEXT"),
    ("runs", "trigger", "TEXT NOT NULL DEFAULT '{}'"),
    ("runs", "queued_at", "REAL"),
    ("runs", "retry_of", "INTEGER"),
)

# --- training jobs and the model registry (registry.py) ---------------------------------------

REGISTRY = """
CREATE TABLE IF NOT EXISTS training_jobs (
    name            TEXT PRIMARY KEY,
    run_id          INTEGER REFERENCES runs(id),
    cache_key       TEXT NOT NULL,
    status          TEXT NOT NULL,
    secondary_status TEXT,
    failure_reason  TEXT,
    build_digest    TEXT,
    data_digest     TEXT,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    metrics         TEXT NOT NULL DEFAULT '{}',
    model_uri       TEXT,
    model_sha256    TEXT,
    log_path        TEXT,
    started_at      REAL,
    ended_at        REAL
);
CREATE INDEX IF NOT EXISTS training_jobs_cache ON training_jobs(cache_key, status);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name      TEXT NOT NULL,
    version         INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- Approved | Rejected | PendingManualApproval
    status_reason   TEXT,
    model_uri       TEXT NOT NULL,
    model_sha256    TEXT NOT NULL,
    metrics         TEXT NOT NULL DEFAULT '{}',
    training_job    TEXT,
    build_digest    TEXT,
    commit_sha      TEXT,
    run_id          INTEGER,
    lineage         TEXT NOT NULL DEFAULT '{}',
    created_at      REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
"""

# --- endpoints, their configs and their history (endpoints.py) --------------------------------

ENDPOINTS = """
CREATE TABLE IF NOT EXISTS endpoints (
    name            TEXT PRIMARY KEY,
    backend         TEXT NOT NULL,
    status          TEXT NOT NULL,
    url             TEXT,
    port            INTEGER,
    pid             INTEGER,
    config_name     TEXT,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    failure_reason  TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_configs (
    name            TEXT PRIMARY KEY,
    endpoint_name   TEXT NOT NULL,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    run_id          INTEGER,
    reason          TEXT,
    spec            TEXT NOT NULL DEFAULT '{}',
    created_at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoint_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_name   TEXT NOT NULL,
    config_name     TEXT,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT,
    reason          TEXT NOT NULL,          -- deploy | rollback | alarm | restart
    detail          TEXT,
    run_id          INTEGER,
    at              REAL NOT NULL
);
"""

# --- events, webhook deliveries and approvals (events.py, approvals.py) -----------------------

EVENTS = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    delivery_id     TEXT PRIMARY KEY,
    event           TEXT NOT NULL,
    received_at     REAL NOT NULL,
    run_id          INTEGER
);
-- schema 5: a replay is known by its body, whatever its id
CREATE TABLE IF NOT EXISTS webhook_bodies (
    body_sha256     TEXT PRIMARY KEY,
    delivery_id     TEXT NOT NULL,
    received_at     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    run_id          INTEGER PRIMARY KEY REFERENCES runs(id),
    model_group     TEXT NOT NULL,
    model_version   INTEGER NOT NULL,
    status          TEXT NOT NULL,          -- Pending | Approved | Rejected
    requested_at    REAL NOT NULL,
    expires_at      REAL,
    decided_by      TEXT,
    comment         TEXT,
    decided_at      REAL,
    summary         TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              REAL NOT NULL,
    -- registered | approved | rejected | deployed | rolled_back | restarted | …
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,          -- model group/version or endpoint name
    data            TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS event_cursors (
    url             TEXT PRIMARY KEY,
    last_id         INTEGER NOT NULL
);
"""

# --- monitoring (monitoring.py) ----------------------------------------------------------------

MONITORING = """
CREATE TABLE IF NOT EXISTS model_baselines (
    group_name          TEXT NOT NULL,
    version             INTEGER NOT NULL,
    statistics_uri      TEXT NOT NULL,
    statistics_sha256   TEXT NOT NULL,
    constraints_uri     TEXT NOT NULL,
    constraints_sha256  TEXT NOT NULL,
    -- {"channel", "files", "label", "item_count", …}
    dataset             TEXT NOT NULL DEFAULT '{}',
    created_at          REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
CREATE TABLE IF NOT EXISTS monitoring_executions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_name   TEXT NOT NULL,
    window_start    REAL NOT NULL,          -- captured records at or after this…
    window_end      REAL NOT NULL,          -- …and before this
    -- Completed | CompletedWithViolations | Skipped | Failed
    status          TEXT NOT NULL,
    records         INTEGER NOT NULL DEFAULT 0,
    violation_count INTEGER NOT NULL DEFAULT 0,
    -- [{"variant", "model", "records", "violations", "violations_uri", …}]
    variants        TEXT NOT NULL DEFAULT '[]',
    reason          TEXT,                   -- why it was skipped or failed
    started_at      REAL NOT NULL,
    ended_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS monitoring_executions_window
    ON monitoring_executions(endpoint_name, window_end);
"""

# --- processing jobs (processing.py) ---------------------------------------------------------

PROCESSING = """
CREATE TABLE IF NOT EXISTS processing_jobs (
    name            TEXT PRIMARY KEY,
    run_id          INTEGER,
    step            TEXT NOT NULL,          -- the name of its step in processing:
    cache_key       TEXT NOT NULL,          -- script, arguments and input digests
    status          TEXT NOT NULL,          -- InProgress | Completed | Failed | Stopped
    failure_reason  TEXT,
    exit_message    TEXT,                   -- /opt/ml/output/message (ExitMessage)
    inputs          TEXT NOT NULL DEFAULT '{}',   -- {name: digest or reference}
    outputs         TEXT NOT NULL DEFAULT '{}',   -- {name: {"uri", "sha256"}}
    report          TEXT,                   -- the step's report (a PropertyFile), as JSON
    log_path        TEXT,
    started_at      REAL NOT NULL,
    ended_at        REAL
);
CREATE INDEX IF NOT EXISTS processing_jobs_cache ON processing_jobs(cache_key, status);
"""

# --- batch transform jobs (transforms.py) ------------------------------------------------------

TRANSFORMS = """
CREATE TABLE IF NOT EXISTS transform_jobs (
    name            TEXT PRIMARY KEY,       -- TransformJobName
    backend         TEXT NOT NULL,
    status          TEXT NOT NULL,          -- InProgress | Completed | Failed | Stopped
    failure_reason  TEXT,
    model_group     TEXT,
    model_version   INTEGER,
    model_sha256    TEXT NOT NULL,
    input_uri       TEXT NOT NULL,
    output_uri      TEXT NOT NULL,
    -- ContentType, SplitType, BatchStrategy, DataProcessing… as TransformSettings has them
    settings        TEXT NOT NULL DEFAULT '{}',
    objects         INTEGER NOT NULL DEFAULT 0,
    rows_in         INTEGER NOT NULL DEFAULT 0,
    rows_out        INTEGER NOT NULL DEFAULT 0,
    run_id          INTEGER,
    pid             INTEGER,                -- the process running it, while InProgress
    pid_start       INTEGER,
    log_path        TEXT,
    started_at      REAL NOT NULL,
    ended_at        REAL
);
CREATE INDEX IF NOT EXISTS transform_jobs_model ON transform_jobs(model_group, model_version);
"""

# --- endpoint metrics per minute (metric_history.py) --------------------------------------------

METRIC_HISTORY = """
CREATE TABLE IF NOT EXISTS endpoint_metrics (
    endpoint        TEXT NOT NULL,
    minute          INTEGER NOT NULL,       -- the minute's start, seconds since the epoch
    variant         TEXT NOT NULL,
    invocations     INTEGER NOT NULL,
    errors_4xx      INTEGER NOT NULL,
    errors_5xx      INTEGER NOT NULL,
    model_p50_ms    REAL,                   -- NULL: no request in that minute
    model_p99_ms    REAL,
    overhead_p50_ms REAL,
    overhead_p99_ms REAL,
    share           REAL,                   -- the variant's share of the traffic (its weight)
    shift_percent   REAL,                   -- during a canary/linear update: the new config's
    PRIMARY KEY (endpoint, minute, variant)
) WITHOUT ROWID;
"""

SCHEMA = (
    RUNS + REGISTRY + ENDPOINTS + EVENTS + MONITORING + PROCESSING + TRANSFORMS + METRIC_HISTORY
)
