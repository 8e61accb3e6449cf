"""Ctrl-C at any point of start-up ends `submit` with exit 130 and its one-line message.

An early Ctrl-C once ended in a segfault (exit 139): a KeyboardInterrupt raised inside a C
extension's import or inside ray.init leaves native state that can crash the interpreter on exit.
Those steps now hold SIGINT until they are done (schedule/interrupts.py).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from birdgen_ray.io.layout import LEASE_FILE
from birdgen_ray.schedule.interrupts import sigint_held
from tests.interruptible import interrupt_when
from tests.plans import plan_table, write_plan

pytestmark = pytest.mark.slow  # CLI subprocesses that start Ray

REPO = Path(__file__).resolve().parents[1]


def test_sigint_inside_the_block_is_raised_when_it_ends():
    # Python's own handler, as in the CLI's fresh interpreter, whatever an earlier test of this session left
    earlier = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached_end = False
        with pytest.raises(KeyboardInterrupt):
            with sigint_held("a test step"):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # Python runs signal handlers between bytecodes: the handler has run
                reached_end = True
        assert reached_end
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, earlier)


def _ray_started(proc: psutil.Process) -> bool:
    """A gcs_server or raylet below the driver: ray.init is under way."""
    try:
        return any(("gcs_server" in c.name() or "raylet" in c.name()) for c in proc.children(recursive=True))
    except psutil.Error:
        return False


POINTS = {
    # 0.5 s in: the commands' imports (numpy, pyarrow, matplotlib) take seconds; before Python runs
    # at all a SIGINT kills the process as it would any program
    "imports": lambda proc, out: time.monotonic() - proc.started > 0.5,
    "plan read, output leased": lambda proc, out: (out / LEASE_FILE).exists(),
    "inside ray.init": lambda proc, out: _ray_started(psutil.Process(proc.pid)),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_ctrl_c_during_start_up_exits_130_with_the_interrupted_line(tmp_path, point):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0", HOME=str(tmp_path / "home"))
    command = [sys.executable, "-c", "from birdgen_ray.cli import run; run()", "submit", plan, "--out", str(out)]
    command += ["--generator", "null", "--num-actors", "1", "--gpus-per-actor", "0", "--no-progress"]
    returncode, _, stderr = interrupt_when(command, env, lambda driver: POINTS[point](driver, out), point)
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: "), stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert not (out / LEASE_FILE).exists()
