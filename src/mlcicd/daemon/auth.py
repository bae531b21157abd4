"""Who may use the API of `mlcicd up`: a bearer token, and the name recorded as ``by``.

The token is random (32 bytes, URL-safe), made at the service's first start in each served
project's state directory (``.mlcicd/service.token``, mode 0600, created atomically and never
replaced), so only the OS user that runs the service (and root) can read it: a web page, another
local user or a process without that file cannot call the API. ``MLCICD_TOKEN`` overrides the
file on both sides: set for `mlcicd up`, it is the one token the service accepts; set for the
CLI, it is what the CLI sends.

The CLI finds the token where it finds ``service.json`` (the project's state directory) and
sends it, with its OS user in ``X-Mlcicd-User``; the service records that user as ``by`` of an
approval, a rollback or a run. Whoever holds the token can do anything the owner can, so the
name is theirs to give; what no longer can is a client without the token, or a request body
(its ``by`` is ignored).
"""

from __future__ import annotations

import contextlib
import getpass
import hmac
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

from mlcicd.errors import ConfigError

TOKEN_FILE = "service.token"
TOKEN_ENV = "MLCICD_TOKEN"
USER_HEADER = "X-Mlcicd-User"
# A user name as recorded and shown: what login names are made of, bounded.
USER_NAME = re.compile(r"[\w.@+\\-][\w.@+\\ -]{0,63}")


def os_user() -> str:
    """This process's user: the name the CLI sends, and the service's when none is sent."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container): say which uid
        return f"uid-{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def ensure_token(state_dir: Path) -> bytes:
    """The token in ``state_dir``, made on first use; refused when others could read it."""
    path = token_path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create(path, secrets.token_urlsafe(32).encode())
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"{path} is not a regular file", hint="delete it; `mlcicd up` makes a new token"
        )
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & 0o077):
        raise ConfigError(
            f"{path}: the service's token may be read by others (mode "
            f"{stat.S_IMODE(info.st_mode):o}, "
            f"owner uid {info.st_uid})",
            hint="delete it (`mlcicd up` makes a new one, readable by you only) or `chmod 600 "
            f"{path}`",
        )
    token = path.read_bytes().strip()
    if len(token) < 16:
        raise ConfigError(
            f"{path}: the token is too short to be secret",
            hint="delete it; `mlcicd up` makes a new one",
        )
    return token


def _create(path: Path, token: bytes) -> None:
    """Write ``token`` to ``path`` whole and 0600 from its first byte, unless a token is there
    already (another `mlcicd up` made it first: that one stays)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(token + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def client_token(token_file: Path | None) -> str | None:
    """What a client sends: $MLCICD_TOKEN, else the service's token file (None: no token)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token or token_file is None:
        return token or None
    try:
        return token_file.read_text().strip() or None
    except OSError:
        return None


def client_headers(token_file: Path | None) -> dict[str, str]:
    """The headers that authenticate the CLI (or a git hook): the token and the user's name."""
    headers = {USER_HEADER: os_user()}
    token = client_token(token_file)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def bearer(authorization: str | None) -> bytes | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip().encode() if scheme.lower() == "bearer" and value.strip() else None


def accepted(presented: bytes | None, tokens: list[bytes]) -> bool:
    """Whether ``presented`` is one of ``tokens``; every one compared in constant time."""
    if presented is None:
        return False
    return sum(hmac.compare_digest(presented, token) for token in tokens) > 0


def user_of(header: str | None, default: str) -> str:
    """``by`` for a request authenticated by the token: its ``X-Mlcicd-User``, else ``default``
    (the service's own user). A name that is not one raises ValueError (a 400)."""
    if header is None or not header.strip():
        return default
    name = header.strip()
    if not USER_NAME.fullmatch(name):
        raise ValueError(f"{USER_HEADER}: not a user name: {name[:80]!r}")
    return name
