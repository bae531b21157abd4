"""The HTTP side of `mlcicd up` against what a hostile web page or a bad client sends: no token,
a form's content type, a rebound Host, a Content-Length that lies, a client that never finishes
its request. Over real sockets, to a real `mlcicd up` (or, for the timeouts, its server in this
process with a short timeout)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_all
from tests.daemon.conftest import ServiceProcess, fast_project

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"}


@pytest.fixture
def service(tmp_path: Path, services: list[ServiceProcess]) -> ServiceProcess:
    started = ServiceProcess(fast_project(tmp_path / "iris"), tmp_path / "service.log").start()
    services.append(started)
    return started


def ask(
    service: ServiceProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message, bytes]:
    """One request on its own connection; ``Host`` is what http.client sends unless given."""
    host, port = service.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        sent = dict(headers or {})
        connection.putrequest(method, path, skip_host="Host" in sent)
        for name, value in sent.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def raw(url: str, request: bytes) -> bytes:
    """``request`` as bytes on a socket; everything the server sends until it closes or 30 s
    pass."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer and b"connection: close" not in answer.lower():
                break  # kept alive: the answer is all there is
    return answer


def test_the_api_needs_the_token_and_the_dashboard_does_not(service: ServiceProcess) -> None:
    token_file = service.project / ".mlcicd" / "service.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600  # only the service's user reads it
    for path in ("/api/runs", "/api/events", "/health"):
        code, headers, body = ask(service, "GET", path)
        assert code == 401 and headers["WWW-Authenticate"] == "Bearer", (path, body)
        assert str(token_file) in json.loads(body)["hint"]  # where the token is
        assert (
            ask(service, "GET", path, headers={"Authorization": "Bearer not-the-token"})[0] == 401
        )
        assert ask(service, "HEAD", path)[0] == 401
        assert ask(service, "GET", path, headers=service.auth())[0] == 200
    code, _, body = ask(service, "HEAD", "/api/runs", headers=service.auth())
    assert code == 200 and body == b""
    assert ask(service, "GET", "/")[0] == 200  # the dashboard: read-only, no token


def test_a_cross_site_form_changes_nothing(service: ServiceProcess) -> None:
    """What an HTML form on any site can send: a form's content type, no token, no custom header."""
    for path in (
        "/api/runs",
        "/api/runs/1/approve",
        "/api/runs/1/retry",
        "/api/endpoints/iris-classifier-endpoint/rollback",
        "/api/notify",
    ):
        for body in (b"", b"ref=main&force=1", b'{"ref": "main"}'):
            code, _, answer = ask(service, "POST", path, body, FORM)
            assert code == 401, (path, body, answer)
        # The token alone does not make a form's body acceptable.
        code, _, answer = ask(service, "POST", path, b"ref=main", {**FORM, **service.auth()})
        assert code == 415 and b"application/json" in answer, (path, answer)
    code, _, _ = ask(service, "POST", "/api/runs", b"{}", JSON)  # JSON without the token: still no
    assert code == 401
    assert service.get("/api/runs") == []  # nothing was queued


def test_a_request_under_another_host_name_is_refused(service: ServiceProcess) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends
    ``Host: evil.example``."""
    port = service.url.rsplit(":", 1)[1]
    for path in ("/api/runs", "/health", "/", "/runs/1", "/events"):
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}", ""):
            code, _, body = ask(service, "GET", path, headers={"Host": host, **service.auth()})
            assert code == 400 and b"not this service's address" in body, (path, host, code, body)
    code, _, body = ask(
        service, "GET", "/api/runs", headers={"Host": f"localhost:{port}", **service.auth()}
    )
    assert code == 200, body
    # The webhook is reached through a tunnel under GitHub's name for it: its signature decides.
    code, _, body = ask(
        service,
        "POST",
        "/webhooks/github",
        b"{}",
        {"Host": "hooks.example.com", **JSON, "X-GitHub-Event": "push"},
    )
    assert code == 401 and b"X-Hub-Signature-256" in body, body


def test_a_content_length_that_lies_is_answered_and_the_server_goes_on(
    service: ServiceProcess,
) -> None:
    token = service.auth()["Authorization"]
    port = service.url.rsplit(":", 1)[1]
    for length in (b"-1", b"abc", b"1e3", b"99999999999999999999999"):
        answer = raw(
            service.url,
            b"POST /api/notify HTTP/1.1\r\nHost: 127.0.0.1:"
            + port.encode()
            + b"\r\nAuthorization: "
            + token.encode()
            + b"\r\nContent-Type: application/json\r\n"
            + b"Content-Length: "
            + length
            + b"\r\n\r\n{}",
        )
        assert answer.startswith(b"HTTP/1.1 400 "), (length, answer)
    # Too large, declared: 413 at once, without waiting for (or reading) a byte of the body.
    for length, closes in ((2_000_000, False), (100_000_000, True)):
        answer = raw(
            service.url,
            b"POST /api/notify HTTP/1.1\r\nHost: 127.0.0.1:"
            + port.encode()
            + b"\r\nAuthorization: "
            + token.encode()
            + b"\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\n\r\n" % length,
        )
        assert (
            answer.startswith(b"HTTP/1.1 413 ")
            and (b"connection: close" in answer.lower()) == closes
        ), answer
    answer = raw(
        service.url,
        b"POST /webhooks/github HTTP/1.1\r\nHost: tunnel.example\r\n"
        b"Content-Type: application/json\r\nContent-Length: 26214401\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert service.get("/health")["status"] == "ok"  # still serving


# -- the server in this process (no queue loop: nothing queued runs), with a short timeout ----
# Short, yet not so short that a client of a loaded machine (descheduled between its connect and
# its send) is cut as a slow one: the slow clients' test waits for it once, alongside its others.
SHORT_TIMEOUT = 2.0


class InProcess:
    def __init__(self, root: Path, **limits: Any) -> None:
        from mlcicd.daemon.core import Service
        from mlcicd.daemon.http import ServiceServer

        self.service = Service([root], 0)
        self.service.load_tokens()
        self.server = ServiceServer(
            self.service,
            0,
            **{"header_timeout": SHORT_TIMEOUT, "body_timeout": SHORT_TIMEOUT, **limits},
        )
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = self.service.tokens[0].decode()

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(
                "POST", path, body, {"Authorization": f"Bearer {self.token}", **headers}
            )
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcess]:
    served = InProcess(fast_project(tmp_path / "iris"))
    served.server.start()
    yield served
    served.server.stop()


def test_by_is_who_holds_the_token_not_what_the_body_says(server: InProcess) -> None:
    code, answer = server.post(
        "/api/runs", json.dumps({"by": "mallory"}).encode(), {**JSON, "X-Mlcicd-User": "ada"}
    )
    assert code == 202, answer
    assert answer["run"]["trigger"]["by"] == "ada"
    code, answer = server.post("/api/runs", b"{}", {**JSON, "X-Mlcicd-User": "<b>mallory</b>"})
    assert code == 400 and "X-Mlcicd-User" in answer["error"]
    root = server.service.served[0].project.root
    (root / "README.md").write_text("another commit\n")
    commit_all(root, "another commit")
    code, answer = server.post("/api/runs", json.dumps({"by": "mallory"}).encode(), JSON)
    assert (
        code == 202 and answer["run"]["trigger"]["by"] == server.service.user
    )  # unnamed: the owner
    state = server.service.served[0].project.state
    assert [r.trigger["by"] for r in state.list_runs()] == [server.service.user, "ada"]


def test_a_slow_client_holds_nobody_and_is_cut(server: InProcess) -> None:
    url = server.url
    health = (
        f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.token}\r\nConnection: close\r\n\r\n"
    ).encode()
    silent = socket.create_connection(
        ("127.0.0.1", server.port), timeout=30
    )  # connects, says nothing
    half = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    half.sendall(
        b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port
    )  # never ends its headers
    body = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    body.sendall(
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    )  # nor its body
    answered = threading.Event()

    def others() -> None:  # meanwhile, a hundred requests of others are answered
        for _ in range(100):
            assert raw(url, health).startswith(b"HTTP/1.1 200 ")
        answered.set()

    thread = threading.Thread(target=others)
    thread.start()
    thread.join(timeout=120)
    assert answered.is_set()
    for sock in (silent, half, body):  # each is cut: a 408 and the end of the connection
        with sock:
            answer = b""
            while chunk := sock.recv(4096):  # a socket timeout (30 s) here fails the test
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_the_token_file_is_private_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcicd.daemon import auth
    from mlcicd.errors import ConfigError

    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    state = tmp_path / ".mlcicd"
    token = auth.ensure_token(state)
    path = state / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(token) >= 32
    assert auth.ensure_token(state) == token  # made once, kept across starts
    assert auth.client_token(path) == token.decode()
    assert not [p for p in state.iterdir() if p.name != auth.TOKEN_FILE]  # no temp file left behind
    monkeypatch.setenv(auth.TOKEN_ENV, "from-the-environment")
    assert auth.client_token(path) == "from-the-environment"
    path.chmod(0o644)  # readable by every local user: not a secret any more
    with pytest.raises(ConfigError, match="may be read by others") as refused:
        auth.ensure_token(state)
    assert f"chmod 600 {path}" in str(refused.value)
    assert auth.accepted(token, [b"x" * 43, token]) and not auth.accepted(b"", [token])
    assert not auth.accepted(None, [token])
    assert (
        auth.bearer("Bearer abc") == b"abc"
        and auth.bearer("Basic abc") is None
        and auth.bearer(None) is None
    )
    if hasattr(os, "getuid"):
        assert auth.user_of(None, "owner") == "owner" and auth.user_of(" ada ", "owner") == "ada"
        with pytest.raises(ValueError, match="not a user name"):
            auth.user_of("ada\nevil", "owner")


def test_the_git_hook_sends_the_token_it_reads_when_it_runs(
    server: InProcess, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from mlcicd.daemon.auth import TOKEN_ENV, token_path
    from mlcicd.hooks import hook_script

    token_file = token_path(server.service.served[0].project.state_dir)
    script = hook_script(server.url, token_file)
    assert str(token_file) in script and server.token not in script  # the token stays in its file
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    repo = str(server.service.served[0].project.root)
    for args, says in (
        ([str(token_file)], "notified"),
        ([], "refused the token"),
        ([str(tmp_path / "missing.token")], "refused the token"),
    ):
        hook = subprocess.run(
            [sys.executable, "-m", "mlcicd.hooks", server.url, repo, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert hook.returncode == 0 and says in hook.stderr, (args, hook.stderr)


def test_the_cli_sends_the_token_itself_and_says_when_it_is_refused(
    server: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcicd.daemon import client
    from mlcicd.daemon.auth import TOKEN_ENV
    from mlcicd.errors import NotFoundError
    from mlcicd.project import Project

    project = Project(server.service.served[0].project.root)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(
        NotFoundError, match="run 7 does not exist"
    ):  # through: the token was accepted
        client.get_run(server.url, project, 7)
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(
        client.TokenRefusedError, match=r"refused the token \(from \$MLCICD_TOKEN\)"
    ) as refused:
        client.get_run(server.url, project, 7)
    assert "the user that runs `mlcicd up`" in str(refused.value)


def test_a_chunked_body_is_cut_at_the_limit(server: InProcess) -> None:
    from mlcicd.daemon.http import API_BODY

    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/notify HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            % (server.port, server.token.encode())
        )
        for _ in range(API_BODY // len(chunk) + 1):  # just past the limit, never the last chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = b""
        while part := sock.recv(65536):
            answer += part
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def test_each_served_project_has_its_token_and_the_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcicd.daemon.auth import TOKEN_ENV, TOKEN_FILE
    from mlcicd.daemon.core import Service

    roots = [fast_project(tmp_path / "a"), fast_project(tmp_path / "b")]
    monkeypatch.setenv(TOKEN_ENV, "the-one-token-of-this-service")
    service = Service(roots, 0)
    service.load_tokens()
    assert service.tokens == [b"the-one-token-of-this-service"]
    assert not any((root / ".mlcicd" / TOKEN_FILE).exists() for root in roots)  # nothing written
    monkeypatch.delenv(TOKEN_ENV)
    service.load_tokens()
    files = [(root / ".mlcicd" / TOKEN_FILE) for root in roots]
    assert (
        service.tokens == [f.read_bytes().strip() for f in files] and len(set(service.tokens)) == 2
    )
    assert all(str(f) in service.token_hint for f in files)  # a 401 says where to look


def test_connections_past_the_limit_are_answered_503(tmp_path: Path) -> None:
    from tests.helpers import wait_for

    served = InProcess(fast_project(tmp_path / "iris"), header_timeout=60.0, concurrency=3)
    served.server.start()
    health = (
        f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Authorization: Bearer {served.token}\r\nConnection: close\r\n\r\n"
    ).encode()
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=30) for _ in range(3)]
    try:
        # Once the server has taken the idle ones, the next is refused rather than queued.
        wait_for(
            "the limit to be reached",
            lambda: raw(served.url, health).startswith(b"HTTP/1.1 503 "),
            60,
        )
        for sock in idle:
            sock.close()
        wait_for(
            "the server to answer again",
            lambda: raw(served.url, health).startswith(b"HTTP/1.1 200 "),
            60,
        )
    finally:
        served.server.stop()
