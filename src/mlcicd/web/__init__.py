"""The dashboard of `mlcicd up`: read-only HTML pages at ``/``, from the data the JSON API answers.

    data.py      one function per resource (runs, a run, logs, models, endpoints, events):
                 what the API (:mod:`mlcicd.daemon.http`) answers and the pages render
    routes.py    a page's path → its data → its page; 404 pages for unknown runs, models, endpoints
    pages.py     the pages, from plain (JSON-able) data
    charts.py    SVG charts drawn server-side: lines over time, bars, timelines, a graph
    layout.py    the frame, escaping (:class:`layout.Html`), tables, one inline stylesheet
    live.py      the one script: a live page swaps in its new content (CSP script-src 'self')

Server-rendered with the standard library; no external assets (the machine may be offline).
A page that changes (a run in progress) is followed by ``live.py``'s script, or without
JavaScript by a ``<meta refresh>`` inside ``<noscript>``: the content never needs the script.
"""
