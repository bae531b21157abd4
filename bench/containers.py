"""Benchmark: `mlcicd run` with the container backends beside the local ones, on examples/iris.

Measures, on this machine (podman; the base image from `mlcicd image base`, made first if
missing and timed):
  local            `mlcicd run` with the local backends (the environment cache warm)
  container cold   `mlcicd run` with both backends `container`: the image built from scratch
                   (requirements.txt made unique, so no cached layer applies), trained and
                   served from it
  container warm   a new commit (a changed hyperparameter): the image rebuilt from its cached
                   layers, the job and the endpoint update
  req/s            the local endpoint and the container endpoint (2 workers each), the same
                   single-row JSON POST, wrk (else a Python client) with 8 connections,
                   alternating, median of --runs runs of --duration seconds
Image sizes are podman's.

Run: .venv/bin/python bench/containers.py [--runs 3] [--duration 5] [--record]
--record appends the figures to docs/benchmarks.md. Target (issue 9): the container
endpoint's req/s within 80 % of the local one's in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import GIT, MLCICD, REPO, commit, machine, sh
from serving import pyclient, wrk

BODY = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


def endpoint_url(project: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        [
            *MLCICD,
            "-C",
            str(project),
            "endpoints",
            "describe",
            "iris-classifier-endpoint",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    return str(json.loads(out)["endpoint"]["url"])


def image_size(tag: str) -> float:
    out = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip()) / 1e6


def project_copy(root: Path, name: str, env: dict[str, str], edit: dict[str, str]) -> Path:
    project = root / name
    shutil.copytree(
        REPO / "examples" / "iris", project, ignore=shutil.ignore_patterns(".mlcicd", "__pycache__")
    )
    config = project / "mlcicd.yaml"
    text = config.read_text()
    for old, new in edit.items():
        text = text.replace(old, new)
    config.write_text(text)
    subprocess.run([*GIT, "init", "-q", "--initial-branch=main"], cwd=project, check=True, env=env)
    commit(project, env, "iris")
    return project


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ)
    started = time.perf_counter()
    suite = (
        os.environ.get("MLCICD_TEST_BASE_SUITE") or "trixie"
    )  # as the tests: see tests/containers
    base = subprocess.run(
        [*MLCICD, "image", "base", "--suite", suite],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    base_seconds, base_tag = time.perf_counter() - started, base.stdout.strip()
    load = wrk if shutil.which("wrk") else pyclient
    with tempfile.TemporaryDirectory(prefix="mlcicd-bench-containers-") as scratch:
        root = Path(scratch)
        local = project_copy(root, "local", env, {})
        boxed = project_copy(
            root,
            "boxed",
            env,
            {
                "backend: local                   # or sagemaker": "backend: container",
                "  backend: local\n": "  backend: container\n",
                "  test: python -m pytest -q tests": f"  image:\n    base: {base_tag}\n  test: "
                "python -m pytest -q tests",
            },
        )
        with open(boxed / "requirements.txt", "a", encoding="utf-8") as fh:
            fh.write(f"# bench {time.time()}\n")  # a layer no earlier build made
        commit(boxed, env, "unique requirements.txt")
        try:
            local_s = sh([*MLCICD, "-C", str(local), "run"], local, env)
            cold_s = sh([*MLCICD, "-C", str(boxed), "run"], boxed, env)
            config = boxed / "mlcicd.yaml"
            config.write_text(config.read_text().replace("C: 1.0", "C: 0.9"))
            commit(boxed, env, "C 0.9")
            warm_s = sh([*MLCICD, "-C", str(boxed), "run"], boxed, env)
            tags = subprocess.run(
                [
                    "podman",
                    "images",
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                    "localhost/mlcicd/iris-classifier",
                ],
                capture_output=True,
                text=True,
            ).stdout.split()
            urls = {"local": endpoint_url(local, env), "container": endpoint_url(boxed, env)}
            rps: dict[str, list[float]] = {"local": [], "container": []}
            for _ in range(args.runs):
                for name, url in urls.items():
                    rps[name].append(
                        load(f"{url}/invocations", BODY, 8, args.duration, 2, root).rps
                    )
        finally:
            for project in (local, boxed):
                subprocess.run(
                    [
                        *MLCICD,
                        "-C",
                        str(project),
                        "endpoints",
                        "delete",
                        "iris-classifier-endpoint",
                    ],
                    capture_output=True,
                    env=env,
                )
    local_rps, container_rps = statistics.median(rps["local"]), statistics.median(rps["container"])
    lines = [
        f"### Containers, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC — {machine()}, load "
        f"{os.getloadavg()[0]:.1f}",
        "",
        "| | seconds |",
        "|---|---|",
        f"| `mlcicd image base` ({'made' if base_seconds > 20 else 'existed'}; "
        f"{image_size(base_tag):.0f} MB) | {base_seconds:.1f} |",
        f"| `mlcicd run`, local backends | {local_s:.1f} |",
        f"| `mlcicd run`, container backends, image from scratch ({image_size(tags[0]):.0f} MB) "
        f"| {cold_s:.1f} |"
        if tags
        else "",
        f"| `mlcicd run`, container backends, new commit (cached layers) | {warm_s:.1f} |",
        "",
        f"Endpoint, 8 connections, {'wrk' if load is wrk else 'Python client'}, median of "
        f"{args.runs} x {args.duration:g}s: "
        f"local {local_rps:.0f} req/s, container {container_rps:.0f} req/s "
        f"({100 * container_rps / local_rps:.0f} % of local; target ≥ 80 %).",
        "",
    ]
    report = "\n".join(line for line in lines if line is not None)
    print(report)
    if args.record:
        with open(REPO / "docs" / "benchmarks.md", "a", encoding="utf-8") as fh:
            fh.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
