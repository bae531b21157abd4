"""Benchmark: the pipeline from commit to InService, on copies of examples/iris and
examples/pipeline (the three-step pipeline: prepare → train → evaluate, and a data check).

Measures, on this machine, for each:
  cold       first run with an empty environment cache (installs the requirements)
  warm       a new commit (a changed hyperparameter) with the environment cached:
             source → build (project tests) → train → gate → register → endpoint update;
             the pipeline template also runs prepare (cached: the data is unchanged), the
             data check against the model before, and evaluate
  unchanged  `mlcicd run` again with nothing changed (every stage cached)
  staging    for a template with `staging:` (iris): the staging stage's own time in each warm
             run (a staging endpoint, the endpoint tests, the load check, the teardown), and
             the warm runs of a copy without `staging:` for comparison
  by stage   where a warm run's time goes: each stage's time as the run recorded it, and the
             CPU time (user + sys) of the run's whole process tree — the CLI, the project's
             tests, the training job; not the endpoint's workers, which the endpoint's own
             supervisor starts — a figure that a machine busy with other work changes less
             than the wall time

Run: .venv/bin/python bench/pipeline.py [--repeat N] [--template iris|pipeline] [--record]
--record appends the figures to docs/benchmarks.md with the machine and date.
Targets (2 cores): iris warm < 10 s, unchanged < 1 s; pipeline warm < 6 s; the staging stage
<= 3 s of a warm run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLCICD = [sys.executable, "-m", "mlcicd"]
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    return sh_cpu(cmd, cwd, env)[0]


def sh_cpu(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time, and the CPU time (user + sys) of ``cmd``'s process tree: every descendant
    that was waited for (a detached endpoint supervisor and its workers are not)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def commit(project: Path, env: dict[str, str], message: str) -> None:
    subprocess.run([*GIT, "add", "-A"], cwd=project, check=True, env=env)
    subprocess.run([*GIT, "commit", "-q", "-m", message], cwd=project, check=True, env=env)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
        f"{platform.system()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="repetitions of the warm and unchanged runs"
    )
    parser.add_argument(
        "--record", action="store_true", help="append the results to docs/benchmarks.md"
    )
    parser.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        action="append",
        help="which project (default: both)",
    )
    args = parser.parse_args()

    rows = []
    for template in args.template or sorted(TEMPLATES):
        runs = _measure(template, args.repeat)
        rows += [
            (f"{template}: cold (empty environment cache)", [runs.cold]),
            (f"{template}: warm (new commit → InService)", runs.warm),
            (f"{template}: unchanged rerun (all cached)", runs.unchanged),
        ]
        breakdown = runs
        if "staging" in runs.stages:
            plain = _measure(template, args.repeat, staging=False)
            rows += [
                (f"{template}: staging stage, in the warm run", runs.stages["staging"]),
                (f"{template}: warm, a copy without staging", plain.warm),
            ]
            breakdown = plain
        label = f"{template}{'' if breakdown is runs else ' without staging'}: warm"
        rows += [(f"{label}, CPU of the run's processes", breakdown.warm_cpu)]
        rows += [
            (f"{label}, stage {stage}", seconds) for stage, seconds in breakdown.stages.items()
        ]
    print(f"machine: {machine()}")
    print(f"{'case':<44}{'median':>9}{'min':>9}{'max':>9}  n")
    for name, values in rows:
        print(
            f"{name:<44}{statistics.median(values):>8.2f}s"
            f"{min(values):>8.2f}s{max(values):>8.2f}s  {len(values)}"
        )
    if args.record:
        stamp = dt.date.today().isoformat()
        lines = [
            f"\n### Pipeline, {stamp}\n",
            f"Machine: {machine()}. `python bench/pipeline.py --repeat {args.repeat}`; "
            "wall time of",
            "`mlcicd run` as a subprocess (CLI start-up included).\n",
            "| case | median | min | max | n |",
            "|---|---|---|---|---|",
        ]
        for name, values in rows:
            lines.append(
                f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} s | "
                f"{max(values):.2f} s | {len(values)} |"
            )
        with open(REPO / "docs" / "benchmarks.md", "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")


# The template, and the endpoint its runs deploy to (deleted at the end).
TEMPLATES = {"iris": "iris-classifier-endpoint", "pipeline": "iris-pipeline-endpoint"}


@dataclasses.dataclass
class Measured:
    cold: float
    warm: list[float] = dataclasses.field(default_factory=list)
    unchanged: list[float] = dataclasses.field(default_factory=list)
    warm_cpu: list[float] = dataclasses.field(default_factory=list)
    # each stage's time in each warm run, as the run recorded it, in the run's order
    stages: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def _measure(template: str, repeat: int, *, staging: bool = True) -> Measured:
    """Cold, warm and unchanged runs' wall times, the warm runs' CPU time and their stages'
    times (``staging`` false: the project's ``staging:`` is removed first)."""
    with tempfile.TemporaryDirectory(prefix="mlcicd-bench-") as tmp:
        root = Path(tmp)
        project = root / template
        shutil.copytree(
            REPO / "examples" / template,
            project,
            ignore=shutil.ignore_patterns(".mlcicd", "__pycache__"),
        )
        env = {**os.environ, "MLCICD_CACHE": str(root / "cache")}
        env.pop("MLCICD_HOME", None)
        subprocess.run(["git", "init", "-q", "--initial-branch=main"], cwd=project, check=True)
        config = project / "mlcicd.yaml"
        if not staging:
            config.write_text(
                re.sub(r"(?m)^staging:.*\n(?:(?:[ \t].*|#.*|)\n)*", "", config.read_text())
            )
        commit(project, env, template)
        try:
            runs = Measured(cold=sh([*MLCICD, "run", str(project)], project, env))
            for i in range(repeat):
                config.write_text(_bump(config.read_text(), i))
                commit(project, env, f"hyperparameter change {i}")
                wall, cpu = sh_cpu([*MLCICD, "run", str(project)], project, env)
                runs.warm.append(wall)
                runs.warm_cpu.append(cpu)
                for stage, seconds in _stage_times(project, env).items():
                    runs.stages.setdefault(stage, []).append(seconds)
                runs.unchanged.append(sh([*MLCICD, "run", str(project)], project, env))
        finally:
            subprocess.run(
                [*MLCICD, "-C", str(project), "endpoints", "delete", TEMPLATES[template]],
                cwd=project,
                env=env,
                capture_output=True,
            )
    return runs


def _stage_times(project: Path, env: dict[str, str]) -> dict[str, float]:
    """The newest run's stages and their times, as the run recorded them."""
    shown = subprocess.run(
        [*MLCICD, "-C", str(project), "runs", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    newest = json.loads(shown.stdout)[0]["id"]
    detail = subprocess.run(
        [*MLCICD, "-C", str(project), "runs", "show", str(newest), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {s["stage"]: float(s["elapsed"] or 0.0) for s in json.loads(detail.stdout)["stages"]}


def _bump(text: str, i: int) -> str:
    """A different C hyperparameter each time: a new commit that trains a new model."""
    return re.sub(r"C: [0-9.]+", f"C: {1.0 + (i + 1) / 10:.1f}", text, count=1)


if __name__ == "__main__":
    main()
