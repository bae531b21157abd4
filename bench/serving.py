"""Benchmark: the endpoint against MLflow, a minimal uvicorn app and the HTTP floor, in one run.

Servers, each with 2 worker processes, each measured alone (the others stopped):
  mlflow     `mlflow models serve -w 2 --env-manager local` (MLflow 3.x, from the bench venv)
  mlcicd     our endpoint: supervisor + 2 workers, default handlers (lean predictor, batching)
  iris-own   our endpoint with examples/iris' own inference.py (a user's handlers: the model's
             methods compiled, micro-batched as it opts in)
  iris-own-off  the same with MLCICD_FASTPATH=0 MLCICD_BATCHING=0: a user's handlers before
             issue 17 (not among the defaults; name it in --servers)
  mlcicd-uvicorn  the default handlers with MLCICD_DIRECT=0: every request through uvicorn's
             request cycle, as before serving/direct.py (name it in --servers)
  uvicorn    a minimal raw-ASGI uvicorn app calling model.predict on each request
  hello      uvicorn answering `{}` without reading the body: the HTTP floor
Models: LogisticRegression and a 100-tree RandomForest on iris; a single-row JSON POST
/invocations (MLflow's body is {"inputs": [[...]]}, its scoring format); 8 and 64 connections.
Load: wrk (Debian's `apt-get install -y wrk`), else a Python asyncio client (said so in the
output). Each cell is the median of --runs runs of --duration seconds.

Run:  .venv/bin/python bench/serving.py [--runs 3] [--duration 5] [--record] [--label TEXT]
      PYTHONPATH=src .venv-bench/bin/python bench/serving.py …   every server on one interpreter
                                                                with uvloop (uvicorn's loop=auto)
The bench venv (.venv-bench: mlflow, and the same scikit-learn/numpy as .venv) is created on
first use. --record appends the table to docs/benchmarks.md with the machine, date and load.
Targets (issue 3): LR ≥ 10x MLflow at 8 and 64 connections with p99 ≤ 5 ms at 8; RF ≥ 20x
MLflow at 64; LR at 64 ≥ 50 % of hello.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".venv-bench"
ROW = [5.1, 3.5, 1.4, 0.2]

UVICORN_APPS = """
import os
import numpy as np
import orjson

_MODEL = None
if os.environ.get("BENCH_MODEL"):
    import joblib
    _MODEL = joblib.load(os.environ["BENCH_MODEL"])

_HEADERS = [(b"content-type", b"application/json")]
_HELLO = [*_HEADERS, (b"content-length", b"2")]


async def predict(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/ping":
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    rows = np.asarray(orjson.loads(body), dtype=float).reshape(1, -1)
    out = orjson.dumps(_MODEL.predict(rows), option=orjson.OPT_SERIALIZE_NUMPY)
    headers = [*_HEADERS, (b"content-length", str(len(out)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


def main():
    # uvicorn --workers binds socket.socket(AF_INET, SOCK_STREAM): proto 0, so asyncio skips
    # TCP_NODELAY on accepted connections and the body, written after the headers, waits for
    # the client's delayed ACK (~40 ms). Bind with IPPROTO_TCP and fork, as our supervisor's
    # workers effectively do: the floor should be the best this stack can do.
    import socket, sys, uvicorn
    app, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    for _ in range(workers - 1):
        if os.fork() == 0:
            break
    config = uvicorn.Config(
        globals()[app], http="httptools", lifespan="off", access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[sock])


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HELLO})
    await send({"type": "http.response.body", "body": b"{}"})


if __name__ == "__main__":
    main()
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    timeouts: int


# ------------------------------------------------------------------------------- setup


def ensure_bench_venv() -> Path:
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        (BENCH_VENV / ".gitignore").write_text("*\n")
    probe = subprocess.run([str(python), "-c", "import mlflow"], capture_output=True)
    if probe.returncode != 0:
        import numpy
        import sklearn

        pins = [f"scikit-learn=={sklearn.__version__}", f"numpy=={numpy.__version__}"]
        print("installing mlflow into .venv-bench …", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "mlflow>=3,<4", *pins], check=True
        )
    return python


def train(workdir: Path) -> dict[str, Path]:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    models = {
        "LogisticRegression": LogisticRegression(max_iter=500).fit(X, y),
        "RandomForest-100": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
    }
    paths = {}
    for name, model in models.items():
        model_dir = workdir / name / "model"
        model_dir.mkdir(parents=True)
        joblib.dump(model, model_dir / "model.joblib")
        paths[name] = model_dir
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def wait_in_service(state_dir: Path, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    from mlcicd.serving.layout import STATUS_FILE

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was InService")
        try:
            if json.loads((state_dir / STATUS_FILE).read_text()).get("status") == "InService":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{state_dir} not InService after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


# ------------------------------------------------------------------------------- servers


def serve_mlflow(
    bench_python: Path, model_dir: Path, work: Path, port: int
) -> subprocess.Popen[bytes]:
    mlflow_dir = work / f"mlflow-{model_dir.parent.name}"
    if not mlflow_dir.exists():
        # Newer MLflow 3.x saves with skops and refuses tree models unless their Tree type is
        # trusted explicitly; older 3.x has no such parameter.
        code = textwrap.dedent("""
            import inspect, joblib, mlflow.sklearn, sys
            kwargs = {}
            if "skops_trusted_types" in inspect.signature(mlflow.sklearn.save_model).parameters:
                kwargs["skops_trusted_types"] = ["sklearn.tree._tree.Tree"]
            mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], **kwargs)
        """)
        subprocess.run(
            [str(bench_python), "-c", code, str(model_dir / "model.joblib"), str(mlflow_dir)],
            check=True,
            capture_output=True,
        )
    cmd = [
        str(bench_python.parent / "mlflow"),
        "models",
        "serve",
        "-m",
        str(mlflow_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "2",
        "--env-manager",
        "local",
    ]
    # mlflow execs `uvicorn` from PATH: the bench venv's
    env = dict(os.environ, PATH=f"{bench_python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return start(cmd, env, work, work / "mlflow.log")


IRIS_HANDLERS = REPO / "examples" / "iris" / "src" / "inference.py"


def serve_mlcicd(
    model_dir: Path,
    work: Path,
    port: int,
    python: str,
    handlers: Path | None = None,
    settings: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Our endpoint, with SageMaker's default handlers unless ``handlers`` names a script."""
    from mlcicd.serving.config import ServingConfig, VariantSpec

    edir = work / f"endpoint-{model_dir.parent.name}-{port}"
    code = edir / "code"
    code.mkdir(parents=True)
    if handlers is None:
        (code / "inference.py").write_text("# SageMaker's default handlers\n")
    else:
        shutil.copy(handlers, code / "inference.py")
    config = ServingConfig(
        name="bench",
        variants=(VariantSpec(name="AllTraffic", model_dir=str(model_dir), code_dir=str(code)),),
        port=port,
        workers=2,
    )
    (edir / "config.json").write_text(json.dumps(config.to_dict()))
    env = dict(os.environ, **(settings or {}))
    import mlcicd  # the package this script imported: the work tree's src/ unless PYTHONPATH says

    src = str(Path(mlcicd.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return start(
        [python, "-m", "mlcicd.serving.supervisor", str(edir)], env, work, work / "mlcicd.log"
    )


def serve_uvicorn(
    app: str, model_dir: Path | None, work: Path, port: int
) -> subprocess.Popen[bytes]:
    (work / "bench_apps.py").write_text(textwrap.dedent(UVICORN_APPS))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if model_dir is not None:
        env["BENCH_MODEL"] = str(model_dir / "model.joblib")
    cmd = [sys.executable, "bench_apps.py", app, str(port), "2"]
    return start(cmd, env, work, work / "uvicorn.log")


# ------------------------------------------------------------------------------- load


def wrk(
    url: str, body: bytes, connections: int, duration: float, threads: int, work: Path
) -> Result:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        cmd,
        env=dict(os.environ, BENCH_BODY=body.decode()),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {m[0]: _ms(m[1]) for m in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    errors = timeouts = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += int(sock[1]) + int(sock[2]) + int(sock[3])
        timeouts = int(sock[4])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx[1])
    return Result(rps, lat.get("50", float("nan")), lat.get("99", float("nan")), errors, timeouts)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def pyclient(url: str, body: bytes, connections: int, duration: float, *_: object) -> Result:
    """Fallback when wrk is missing: mlcicd's own load client (keep-alive HTTP/1.1 on asyncio,
    the one the staging stage's load check uses; slower than wrk)."""
    from mlcicd.endpoints.load import run_load

    result = run_load(url, body, concurrency=connections, duration=duration, timeout=2.0)
    return Result(result.rps, result.p50_ms, result.p99_ms, result.errors, 0)


# ------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def median(results: list[Result]) -> Result:
    return Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
        sum(r.errors for r in results),
        sum(r.timeouts for r in results),
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", default="8,64")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (2 cores: keep 1)")
    parser.add_argument("--servers", default="mlflow,mlcicd,uvicorn,hello")
    parser.add_argument(
        "--mlcicd-python",
        default=sys.executable,
        help="interpreter for our workers (e.g. .venv-bench/bin/python to measure with uvloop)",
    )
    parser.add_argument(
        "--models", default="all", help="all, LogisticRegression or RandomForest-100"
    )
    parser.add_argument("--label", default="", help="a note for this run in the record")
    parser.add_argument("--record", action="store_true", help="append to docs/benchmarks.md")
    args = parser.parse_args()

    servers = args.servers.split(",")
    conns = [int(c) for c in args.connections.split(",")]
    load = wrk if shutil.which("wrk") else pyclient
    loadgen = "wrk" if load is wrk else "Python asyncio client (wrk not installed)"
    bench_python = ensure_bench_venv() if "mlflow" in servers else None
    work = Path(tempfile.mkdtemp(prefix="mlcicd-bench-serving-"))
    models = train(work)
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    print(f"{machine()}; load generator: {loadgen}; load average {load_before[0]:.2f}", flush=True)

    table: dict[tuple[str, str, int], Result] = {}
    try:
        measure(servers, models, conns, bench_python, work, load, table, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    report = render(table, conns, started, load_before, load_after, loadgen, args)
    print(report)
    if args.record:
        with open(REPO / "docs" / "benchmarks.md", "a") as fh:
            fh.write("\n" + report)
    return 0


def measure(
    servers: list[str],
    models: dict[str, Path],
    conns: list[int],
    bench_python: Path | None,
    work: Path,
    load: Any,
    table: dict[tuple[str, str, int], Result],
    args: argparse.Namespace,
) -> None:
    chosen = [m for m in models if args.models in ("all", m)]
    cells = [(s, m) for s in servers for m in (chosen if s != "hello" else ["-"])]
    for server, model_name in cells:
        port = free_port()
        model_dir = models.get(model_name)
        body = json.dumps(ROW).encode()
        if server == "mlflow":
            assert bench_python is not None and model_dir is not None
            proc = serve_mlflow(bench_python, model_dir, work, port)
            body = json.dumps({"inputs": [ROW]}).encode()
        elif server in ("mlcicd", "mlcicd-uvicorn"):
            assert model_dir is not None
            via = {"MLCICD_DIRECT": "0"} if server == "mlcicd-uvicorn" else {}
            proc = serve_mlcicd(model_dir, work, port, args.mlcicd_python, settings=via)
        elif server.startswith("iris-own"):
            assert model_dir is not None
            off = (
                {"MLCICD_FASTPATH": "0", "MLCICD_BATCHING": "0"} if server.endswith("-off") else {}
            )
            proc = serve_mlcicd(model_dir, work, port, args.mlcicd_python, IRIS_HANDLERS, off)
        else:
            proc = serve_uvicorn("hello" if server == "hello" else "predict", model_dir, work, port)
        try:
            wait_ready(f"http://127.0.0.1:{port}/ping", proc)
            if server.startswith(("mlcicd", "iris-own")):  # /ping: one worker is up
                wait_in_service(work / f"endpoint-{model_dir.parent.name}-{port}", proc)
            url = f"http://127.0.0.1:{port}/invocations"
            load(url, body, 8, 1.0, args.threads, work)  # warm-up
            for c in conns:
                runs = [
                    load(url, body, c, args.duration, args.threads, work) for _ in range(args.runs)
                ]
                table[(server, model_name, c)] = r = median(runs)
                print(
                    f"{server:8} {model_name:20} c={c:<3} {r.rps:9.0f} req/s  p50 "
                    f"{r.p50_ms:7.2f} ms"
                    f"  p99 {r.p99_ms:7.2f} ms  errors {r.errors} timeouts {r.timeouts}",
                    flush=True,
                )
        finally:
            stop(proc)


def render(
    table: dict[tuple[str, str, int], Result],
    conns: list[int],
    started: dt.datetime,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    loadgen: str,
    args: argparse.Namespace,
) -> str:
    hello = {c: table.get(("hello", "-", c)) for c in conns}
    lines = [
        f"### Serving, {started:%Y-%m-%d %H:%M} UTC{' — ' + args.label if args.label else ''}",
        "",
        f"{machine()}; load generator {loadgen} (-t{args.threads}, on the same machine); "
        f"median of {args.runs} x {args.duration:g} s; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; 2 server workers each; mlcicd workers under "
        f"`{Path(args.mlcicd_python).parent.parent.name}` python.",
        "",
        "| server | model | conns | req/s | p50 ms | p99 ms | p99 / (C/X) | errors | timeouts "
        "| x mlflow | % hello |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (server, model, c), r in table.items():
        mlflow = table.get(("mlflow", model, c))
        floor = hello.get(c)
        bound = c / r.rps * 1e3 if r.rps else float("nan")
        ratio = f"{r.rps / mlflow.rps:.1f}x" if mlflow and mlflow.rps else "—"
        share = f"{100 * r.rps / floor.rps:.0f} %" if floor and floor.rps else "—"
        lines.append(
            f"| {server} | {model} | {c} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.p99_ms / bound:.2f} | {r.errors} | {r.timeouts} | {ratio} | {share} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
