"""Progress off a terminal is plain lines (captured to a real file, as a cluster job's log), and
`status` mid-run agrees with itself: the run line's count is the count above it.

A real `birdgen-ray submit` subprocess on the session's Ray with the null generator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from birdgen_ray.index.status import output_status
from birdgen_ray.io.layout import PROGRESS_FILE
from birdgen_ray.io.storage import Output
from tests import fault_hooks
from tests.fault_hooks import SLEEP_ENV
from tests.plans import plan_table, write_plan
from tests.test_unattended import CLI

LINE = re.compile(
    r"^progress: \d+/24 clips, \d+ committed, \d+ in flight, 0 failed, (\d+\.\d|-) clips/s, ETA (\d+ s|-)$"
)


@pytest.mark.slow  # a real CLI run, ~20 s on a loaded machine
def test_progress_in_a_log_file_is_plain_lines_and_status_agrees_with_itself_mid_run(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(24))
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    args = ["submit", plan, "--out", str(out), "--generator", "null", "--gpus-per-actor", "0", "--num-actors", "1"]
    args += ["--shard-size", "4", "--address", ray_local.get_runtime_context().gcs_address, "--progress-every-s", "0.3"]
    env = {**os.environ, "PYTHONPATH": fault_hooks.PYTHONPATH}  # the hooks reach its actors
    with log.open("w") as sink:
        driver = subprocess.Popen(
            [*CLI, *args, "--actor-env", f"{SLEEP_ENV}=0.3"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
        seen = []
        try:
            deadline = time.monotonic() + 120
            while driver.poll() is None and time.monotonic() < deadline:
                progress = json.loads((out / PROGRESS_FILE).read_text()) if (out / PROGRESS_FILE).exists() else {}
                if progress.get("state") == "running" and progress.get("done"):
                    status = output_status(Output(str(out)))
                    seen.append((status["done"], status["pending"], status["planned"], status["run"]))
                time.sleep(0.2)
            assert driver.wait(timeout=120) == 0, log.read_text()
        finally:
            driver.kill()
    running = [s for s in seen if s[3] and s[3].startswith("running")]
    assert running, seen
    for done, pending, planned, line in running:
        assert f" {done}/{planned}," in line, (done, pending, line)
        in_flight = re.search(r"(\d+) in flight", line)
        assert in_flight is None or int(in_flight.group(1)) <= pending, (pending, line)

    lines = log.read_text().splitlines()
    progress_lines = [line for line in lines if line.startswith("progress:")]
    assert len(progress_lines) >= 2, lines
    assert all(LINE.match(line) for line in progress_lines), progress_lines
    assert progress_lines[-1].startswith("progress: 24/24 clips, 24 committed, 0 in flight")
    assert not any("━" in line or "\r" in line for line in lines), lines  # no bar, no redraws
    others = [line for line in lines if not line.startswith("progress:")]
    assert all(line.startswith(("complete:", "local Ray")) for line in others), others
