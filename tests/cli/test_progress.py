from __future__ import annotations

import io

from mlcicd.cli.progress import TerminalReporter


def test_plain_output_prints_each_stage_and_log_line_once() -> None:
    out = io.StringIO()
    reporter = TerminalReporter(out, live=False)
    reporter.stage_started("train")
    reporter.log("train", "accuracy=0.97")
    reporter.stage_finished("train", "Succeeded", 1.25, "job j-1: accuracy=0.97")
    reporter.stage_started("deploy")
    reporter.stage_finished("deploy", "Cached", 0.01, "already serving")
    lines = out.getvalue().splitlines()
    assert lines[0] == "▶ train"
    assert lines[1] == "    │ accuracy=0.97"
    assert lines[2].startswith("✓ train") and "succeeded" in lines[2] and "1.2s" in lines[2]
    assert "cached" in lines[4]


def test_live_output_redraws_the_running_stage_in_place() -> None:
    out = io.StringIO()
    reporter = TerminalReporter(out, live=True)
    reporter.stage_started("build")
    for i in range(10):
        reporter.log("build", f"line {i}")
    reporter.stage_finished("build", "Failed", 2.0, "tests failed")
    text = out.getvalue()
    assert "\x1b[" in text  # cursor movement: the tail is redrawn, not appended
    assert text.rstrip().endswith("tests failed")
    assert "✗ build" in text
