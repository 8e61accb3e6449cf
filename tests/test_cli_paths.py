"""Every command, every wrong path: a file where a folder is wanted, a missing path, and an unreadable
one (a symbolic link to itself: unreadable even for root) each give one `error:` line and exit 2.

In-process (CliRunner): the same app the console script runs, in a fraction of the time."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app

KINDS = ("file", "missing", "unreadable")


def wrong_path(kind: str, tmp_path: Path) -> Path:
    if kind == "file":
        path = tmp_path / "a_file"
        path.write_text("not a folder\n")
    elif kind == "missing":
        path = tmp_path / "no" / "such" / "path"
    else:
        path = tmp_path / "loop"
        path.symlink_to(path)
    return path


def command(name: str, bad: Path, tmp_path: Path) -> list[str]:
    """`name` given `bad` where it wants a path (a folder of outputs, or the plan/input file)."""
    ok_dest = str(tmp_path / "dest")
    return {
        "plan": ["plan", str(bad), "--target", "5", "-o", ok_dest + ".parquet"],
        "plan-out": ["plan", str(bad), "--target", "5", "-o", str(bad / "plan.parquet")],
        "submit": ["submit", str(bad), "--out", ok_dest, "--generator", "null"],
        "submit-out": ["submit", str(bad), "--out", str(bad), "--generator", "null", "--dry-run"],
        "status": ["status", str(bad)],
        "check": ["check", str(bad)],
        "extract": ["extract", str(bad), "some-clip", "--dest", ok_dest],
        "report": ["report", str(bad), "--dest", ok_dest],
        "export": ["export", str(bad), ok_dest],
        "verify": ["verify", str(bad)],
        "evaluate": ["evaluate", "--real", str(bad), "--synthetic", str(bad), "--out", ok_dest],
    }[name]


@pytest.mark.parametrize(
    "name",
    [
        "plan",
        "plan-out",
        "submit",
        "submit-out",
        "status",
        "check",
        "extract",
        "report",
        "export",
        "verify",
        "evaluate",
    ],
)
def test_every_command_answers_a_wrong_path_in_one_line_with_exit_2(tmp_path, name):
    failures = []
    for kind in KINDS:
        folder = tmp_path / kind
        folder.mkdir()
        args = command(name, wrong_path(kind, folder), folder)
        done = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
        lines = done.output.strip().splitlines()
        if done.exit_code != 2 or len(lines) != 1 or not lines[0].startswith("error:"):
            failures.append((kind, done.exit_code, lines[:6], repr(done.exception)))
    assert not failures, failures
