"""A full disk is one line and exit 2 on every fresh run, never a Ray traceback or a list of failed
shards: real `birdgen-ray submit` subprocesses on the session's Ray, each on a fresh 3 MB tmpfs."""

from __future__ import annotations

import subprocess

import pytest

from tests.plans import plan_table, write_plan
from tests.test_unattended import null_args, run_cli

RUNS = 10


@pytest.mark.slow  # ten CLI runs: about 10 s each on a loaded 2-core machine
def test_ten_fresh_runs_on_a_full_disk_each_end_in_one_line_and_exit_2(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(60, durations=(2.0,)))  # ~7.7 MB of WAVs: too much
    address = ["--address", ray_local.get_runtime_context().gcs_address]
    outcomes = []
    for attempt in range(RUNS):
        disk = tmp_path / f"disk{attempt}"
        disk.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
        try:
            out = str(disk / "out")
            done = run_cli(null_args(plan, out, *address), timeout=300)
        finally:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        lines = done.stderr.splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("error:") and "no space left on the device" in lines[0]
        outcomes.append((done.returncode, one_line and out in lines[0], done.stderr[-2000:]))
    bad = [(attempt, code, tail) for attempt, (code, ok, tail) in enumerate(outcomes) if code != 2 or not ok]
    assert not bad, bad
