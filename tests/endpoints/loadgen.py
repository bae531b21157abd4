"""A steady load from another process: ``python -m tests.endpoints.loadgen URL OUT [THREADS]``.

Half the threads keep their connection alive, half open one per request. Every 0.2 s (and
at SIGTERM) the totals are written to OUT as JSON: requests, failures (the first 50, with
their reason), the distinct answers, and how many answers each production variant gave.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

BODY = json.dumps([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]).encode()
HEADERS = {"Content-Type": "application/json"}


class Load:
    def __init__(self, url: str, threads: int) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.failures: list[str] = []
        self.failed = 0
        self.answers: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.threads = [
            threading.Thread(target=self.run, args=(i % 2 == 0,), daemon=True)
            for i in range(threads)
        ]

    def run(self, keep_alive: bool) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        while not self.stop.is_set():
            try:
                conn.request("POST", "/invocations", body=BODY, headers=HEADERS)
                response = conn.getresponse()
                data = response.read()
                variant = response.getheader("X-Amzn-Invoked-Production-Variant") or ""
                with self.lock:
                    self.requests += 1
                    if response.status != 200:
                        self.fail(f"{response.status}: {data[:200]!r}")
                    else:
                        if len(self.answers) < 20 or data.decode() in self.answers:
                            self.answers[data.decode()] += 1
                        self.variants[variant] += 1
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.requests += 1
                    self.fail(repr(exc))
                conn.close()
            if not keep_alive:
                conn.close()
        conn.close()

    def fail(self, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < 50:
            self.failures.append(reason)

    def report(self, out: Path) -> None:
        with self.lock:
            data = {
                "requests": self.requests,
                "failed": self.failed,
                "failures": list(self.failures),
                "answers": dict(self.answers),
                "variants": dict(self.variants),
                "time": time.time(),
            }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, out)


def main() -> int:
    url, out = sys.argv[1], Path(sys.argv[2])
    load = Load(url, int(sys.argv[3]) if len(sys.argv) > 3 else 4)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    for thread in load.threads:
        thread.start()
    while not load.stop.is_set():
        load.report(out)
        load.stop.wait(0.2)
    for thread in load.threads:
        thread.join(60)
    load.report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
