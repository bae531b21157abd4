"""The dashboard of `mlcicd up`: read-only HTML pages at ``/``, from the data the JSON API answers.

    data.py      one function per resource (runs, a run, logs, models, endpoints, events):
                 what the API (:mod:`mlcicd.daemon.http`) answers and the pages render
    routes.py    a page's path → its data → its page; 404 pages for unknown runs, models, endpoints
    pages.py     the pages, from plain (JSON-able) data
    layout.py    the frame, escaping (:class:`layout.Html`), tables, one inline stylesheet

Server-rendered with the standard library; no scripts and no external assets (the machine
may be offline); a page whose run is still moving refreshes itself with ``<meta refresh>``.
"""
