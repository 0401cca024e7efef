"""The command line as a user meets it: version, and one command per stage in --help."""

from __future__ import annotations

import os
import subprocess
import sys

from skelact import __version__

STAGE_COMMANDS = ("synth", "preprocess", "validate", "flops", "train", "test", "predict", "report")


def _skelact(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skelact", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )


def test_version():
    done = _skelact("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"skelact {__version__}"


def test_help_lists_every_stage_command_with_a_line_of_help():
    done = _skelact("--help")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for command in STAGE_COMMANDS:
        row = next((ln for ln in lines if ln.strip("│ ").startswith(command + " ")), None)
        assert row is not None, f"{command} missing from --help"
        assert len(row.strip("│ ").split()) > 3, f"{command} has no help line"


def test_help_does_not_import_torch():
    """`skelact --help` must stay instant: heavy libraries load only inside the commands."""
    code = "import sys, skelact.cli; print('torch' in sys.modules, 'mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"]
