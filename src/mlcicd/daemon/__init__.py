"""The daemon: `mlcicd up`, the always-on process (the endpoint server is :mod:`mlcicd.serving`)
— the long-running side — an HTTP API and GitHub webhook, the durable run queue
and its worker, polling, endpoint supervision, scheduled monitoring and event notifications.

    up.py          `mlcicd up` put together: the loop and its HTTP server, made and started
    core.py        Service: the loop that claims queued runs, resumes approved ones, polls,
                   supervises endpoints; one per process, for one or more projects
    runner.py      one run in its own process (`python -m mlcicd.daemon.runner`)
    http.py        the HTTP server on 127.0.0.1 (uvicorn, ASGI): its checks (Host, token, JSON,
                   sizes, timeouts), the API, the dashboard and the webhook
    api.py         what the API answers: reads and POSTs on the state and git
    auth.py        the API's token (.mlcicd/service.token, $MLCICD_TOKEN) and ``by``
    webhook.py     GitHub's push webhook: signature, events, routing to projects
    triggers.py    what starts a run: a push notification, a poll, a retry
    endpoint_watch.py  restarts crashed endpoints with backoff, restores them at start
    notifier.py    POSTs registry events to the configured URLs, retried, bounded
    monitoring.py  runs each project's monitoring schedule (`monitor.schedule`) in its own thread
    info.py        service.json: how the CLI and the git hooks find a running service
    client.py      the CLI's side: submit a run, follow it, approve/reject/retry via the API
"""
