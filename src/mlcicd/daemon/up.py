"""`mlcicd up` put together: the loop and the HTTP server that calls into it.

The server (:class:`mlcicd.daemon.http.ServiceServer`) answers for a
:class:`mlcicd.daemon.core.Service`; the service starts and stops the server it is handed,
without importing it. This is the one place that makes both, so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from mlcicd.daemon.core import Service
from mlcicd.daemon.http import ServiceServer
from mlcicd.errors import PortInUseError


def start(roots: list[Path], port: int) -> Service:
    """Serve the projects at ``roots`` on 127.0.0.1:``port`` (0: any free port); the service,
    started (:meth:`Service.wait <mlcicd.daemon.core.Service.wait>` serves until a signal).
    ``PortInUseError`` if the port is taken."""
    service = Service(roots, port)
    service.load_tokens()
    try:
        server = ServiceServer(service, service.port)
    except OSError as exc:
        raise PortInUseError(
            f"cannot listen on 127.0.0.1:{service.port}: {exc.strerror or exc}",
            hint="another `mlcicd up` may be running; pass --port",
        ) from exc
    service.start(server)
    return service
