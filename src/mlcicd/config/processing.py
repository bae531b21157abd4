"""``processing:`` as a graph: what each reference means, the order the steps run in, and the
checks that reject a graph no run could follow (unknown references, cycles, an output used
before it exists).

A reference is ``<step>.<output>`` (an output of a processing step) or ``train.model`` (the
training job's model.tar.gz). A value with a ``/`` (or starting ``./``) is a path in the
commit, and so is a dotted name whose first part is no step (``data.csv``) — unless that part
is so close to a step's name that it is surely a typo of one.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

from mlcicd.config.bounds import at_least
from mlcicd.config.schema import NAME_RE, Config, ProcessingStepConfig
from mlcicd.errors import ConfigError

TRAIN = "train"
MODEL = "model"  # train's one output: its model.tar.gz
# Input and output names: the directory under /opt/ml/processing/{input,output}/ (SageMaker's
# InputName/OutputName, without dots, which separate a reference's parts).
IO_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED_INPUTS = ("code",)  # /opt/ml/processing/input/code is where SageMaker puts the script
RESERVED_STEPS = ("source", "build", "train", "gate", "register", "deploy", "approve")
MAX_STEP_NAME = 24  # a job is <pipeline>-<step>-<timestamp>-<run>, in SageMaker's 63
Phase = Literal["before", "after"]


@dataclass(frozen=True)
class Reference:
    """``step.output``: ``step`` is a processing step's name, or ``train``."""

    step: str
    output: str

    def __str__(self) -> str:
        return f"{self.step}.{self.output}"


def parse_reference(value: str, steps: dict[str, ProcessingStepConfig]) -> Reference | None:
    """The reference ``value`` is, or None for a path (see the module's docstring)."""
    if "/" in value or value.startswith("."):
        return None
    first, dot, rest = value.partition(".")
    if not dot:
        return None
    if first in steps or first == TRAIN:
        return Reference(first, rest)
    return None


def _close_step(value: str, steps: dict[str, ProcessingStepConfig]) -> str | None:
    if "/" in value or value.startswith(".") or "." not in value:
        return None
    first = value.partition(".")[0]
    close = difflib.get_close_matches(first, [*steps, TRAIN], n=1, cutoff=0.8)
    return close[0] if close else None


def phase(config: Config, name: str) -> Phase:
    """``after``: the step runs after training (``after: train``, it reads ``train.model``, or
    it waits for a step that runs after training); else ``before``. For a checked config."""
    steps = {s.name: s for s in config.processing}
    step = steps[name]
    if step.after == TRAIN or any(r.step == TRAIN for r in _references(step, steps).values()):
        return "after"
    waits = dependencies(step, config)
    return "after" if any(phase(config, w) == "after" for w in waits) else "before"


def dependencies(step: ProcessingStepConfig, config: Config) -> set[str]:
    """The processing steps ``step`` waits for: those it reads an output of, and ``after``."""
    steps = {s.name: s for s in config.processing}
    found = {r.step for r in _references(step, steps).values() if r.step in steps}
    if step.after in steps:
        found.add(step.after)
    return found


def _references(
    step: ProcessingStepConfig, steps: dict[str, ProcessingStepConfig]
) -> dict[str, Reference]:
    return {
        name: ref
        for name, value in step.inputs.items()
        if (ref := parse_reference(value, steps)) is not None
    }


def report_names(config: Config) -> dict[str, ProcessingStepConfig]:
    """What a gate key's first part may be: a step with a ``report``, by the step's name and
    by the output that holds the report."""
    names: dict[str, ProcessingStepConfig] = {}
    for step in config.processing:
        if step.report is not None:
            names[step.name] = step
            names[step.report.split("/", 1)[0]] = step
    return names


def baseline_channel(config: Config) -> str | None:
    """The training channel a baseline and the data check read: ``monitor.channel``, else
    ``training``, else the only one; None when there is no such channel."""
    channels = config.train.channels
    name = config.monitor.channel
    if name is None:
        name = "training" if "training" in channels else next(iter(channels), None)
        name = name if name == "training" or len(channels) == 1 else None
    return name if name in channels else None


def check_processing(config: Config, source: str) -> None:
    """Every check of ``processing:``, ``train.channels``' references, the gate's report keys
    and ``data_check``."""
    steps: dict[str, ProcessingStepConfig] = {}
    for i, step in enumerate(config.processing):
        _check_step(step, f"processing[{i}]", steps, source)
        steps[step.name] = step
    for i, step in enumerate(config.processing):
        _check_references(config, step, f"processing[{i}]", steps, source)
    _check_cycles(config, source)
    for channel, value in config.train.channels.items():
        key = f"train.channels.{channel}"
        ref = _reference_or_typo(value, steps, source, key)
        if ref is None:
            continue
        if ref.step == TRAIN:
            raise ConfigError(f"{value}: training cannot read its own output", path=source, key=key)
        _check_output_exists(ref, steps, source, key)
        if phase(config, ref.step) == "after":
            raise ConfigError(
                f"{value} is used before it exists: step {ref.step!r} runs after training",
                path=source,
                key=key,
                hint=f"read an output of a step that runs before training, or drop "
                f"{ref.step}'s after: train",
            )
    reports = report_names(config)
    for threshold in config.gate.thresholds:
        first, dot, path = threshold.metric.partition(".")
        if dot and first in steps and first not in reports:
            raise ConfigError(
                f"step {first!r} has no report for the gate to read",
                path=source,
                key=f"gate.{threshold.metric}",
                hint=f"set processing's {first}.report: <output>/<file>.json",
            )
        if dot and first in reports and not path:
            raise ConfigError(
                "expected a JSON path into the report after the dot (metrics.accuracy)",
                path=source,
                key=f"gate.{threshold.metric}",
            )
    if config.data_check != "off" and not config.train.channels:
        raise ConfigError(
            "the data check profiles the training channel, and train.channels names none",
            path=source,
            key="data_check",
            hint="name the training data in train.channels, or set data_check: off",
        )


def _check_step(
    step: ProcessingStepConfig, key: str, steps: dict[str, ProcessingStepConfig], source: str
) -> None:
    def fail(sub: str, message: str, hint: str | None = None) -> None:
        raise ConfigError(message, path=source, key=f"{key}.{sub}", hint=hint)

    if not NAME_RE.match(step.name) or len(step.name) > MAX_STEP_NAME:
        fail(
            "name",
            f"{step.name!r} is not a valid step name: letters, digits and hyphens, at most "
            f"{MAX_STEP_NAME} characters",
        )
    if step.name in RESERVED_STEPS:
        fail("name", f"{step.name!r} is the name of a pipeline stage", "choose another name")
    if step.name in steps:
        fail("name", f"{step.name!r} is the name of an earlier step too")
    if (
        not step.entry_point.strip()
        or step.entry_point.startswith("/")
        or ".." in (step.entry_point.split("/"))
    ):
        fail("entry_point", f"{step.entry_point!r} is not a path relative to source_dir")
    at_least(source, f"{key}.max_runtime", step.max_runtime, 1, " second")
    at_least(source, f"{key}.instance_count", step.instance_count, 1)
    for name in step.inputs:
        if not IO_NAME_RE.match(name) or name in RESERVED_INPUTS:
            fail(
                f"inputs.{name}",
                f"{name!r} is not a valid input name: letters, digits, '_' and '-', not "
                f"{', '.join(RESERVED_INPUTS)}",
            )
    for i, name in enumerate(step.outputs):
        if not IO_NAME_RE.match(name):
            fail(f"outputs[{i}]", f"{name!r} is not a valid output name: letters, digits, '_', '-'")
        if step.outputs.count(name) > 1:
            fail(f"outputs[{i}]", f"{name!r} is listed twice")
    for name in step.environment:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            fail(f"environment.{name}", f"{name!r} is not an environment variable's name")
    if step.report is not None:
        output, _, file = step.report.partition("/")
        if output not in step.outputs or not file or ".." in file.split("/"):
            fail(
                "report",
                f"{step.report!r} is not a file in one of the step's outputs",
                f"write it as <output>/<file>.json, the output one of "
                f"{', '.join(step.outputs) or '(none: add outputs)'}",
            )


def _reference_or_typo(
    value: str, steps: dict[str, ProcessingStepConfig], source: str, key: str
) -> Reference | None:
    ref = parse_reference(value, steps)
    if ref is None and (close := _close_step(value, steps)) is not None:
        raise ConfigError(
            f"{value!r} names no step: did you mean {close}.{value.partition('.')[2]}?",
            path=source,
            key=key,
            hint=f"a file in the project's root is written ./{value}",
        )
    return ref


def _check_output_exists(
    ref: Reference, steps: dict[str, ProcessingStepConfig], source: str, key: str
) -> None:
    if ref.step == TRAIN:
        if ref.output != MODEL:
            raise ConfigError(
                f"training's one output is train.model, not {ref}", path=source, key=key
            )
        return
    outputs = steps[ref.step].outputs
    if ref.output not in outputs:
        raise ConfigError(
            f"step {ref.step!r} has no output {ref.output!r}",
            path=source,
            key=key,
            hint=f"its outputs: {', '.join(outputs)}" if outputs else f"{ref.step} lists none",
        )


def _check_references(
    config: Config,
    step: ProcessingStepConfig,
    key: str,
    steps: dict[str, ProcessingStepConfig],
    source: str,
) -> None:
    if step.after is not None and step.after != TRAIN:
        if step.after not in steps:
            raise ConfigError(
                f"{step.after!r} is neither train nor a processing step",
                path=source,
                key=f"{key}.after",
                hint=f"steps: {', '.join(steps)}",
            )
        if step.after == step.name:
            raise ConfigError("a step cannot wait for itself", path=source, key=f"{key}.after")
    for name, value in step.inputs.items():
        sub = f"{key}.inputs.{name}"
        ref = _reference_or_typo(value, steps, source, sub)
        if ref is None:
            continue
        if ref.step == step.name:
            raise ConfigError(f"{value}: a step cannot read its own output", path=source, key=sub)
        _check_output_exists(ref, steps, source, sub)
        if ref.step == TRAIN and step.after != TRAIN:
            raise ConfigError(
                f"{value} is used before it exists: the model exists only after training",
                path=source,
                key=sub,
                hint=f"add after: train to step {step.name!r}",
            )


def _check_cycles(config: Config, source: str) -> None:
    order: list[str] = []
    visiting: list[str] = []
    index = {s.name: i for i, s in enumerate(config.processing)}

    def visit(step: ProcessingStepConfig) -> None:
        if step.name in order:
            return
        if step.name in visiting:
            cycle = [*visiting[visiting.index(step.name) :], step.name]
            raise ConfigError(
                f"steps {' → '.join(cycle)} wait for each other in a cycle",
                path=source,
                key=f"processing[{index[step.name]}]",
                hint="one of them must not read the other's output",
            )
        visiting.append(step.name)
        for name in sorted(dependencies(step, config)):
            visit(config.processing[index[name]])
        visiting.pop()
        order.append(step.name)

    for step in config.processing:
        visit(step)


def step_order(config: Config) -> list[ProcessingStepConfig]:
    """The steps, each after every step it waits for (a checked config has no cycle)."""
    done: list[str] = []
    index = {s.name: s for s in config.processing}

    def visit(step: ProcessingStepConfig) -> None:
        if step.name in done:
            return
        for name in sorted(dependencies(step, config)):
            visit(index[name])
        done.append(step.name)

    for step in config.processing:
        visit(step)
    return [index[n] for n in done]


__all__ = [
    "MODEL",
    "TRAIN",
    "Reference",
    "baseline_channel",
    "check_processing",
    "dependencies",
    "parse_reference",
    "phase",
    "report_names",
    "step_order",
]
