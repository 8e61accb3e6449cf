"""Start a `birdgen-ray` subprocess, wait until it reaches a point, and Ctrl-C it: how interrupts are tested."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable


def interrupt_when(
    command: list[str],
    env: dict,
    reached: Callable[[subprocess.Popen], bool],
    what: str,
    reach_s: float = 60,
    end_s: float = 90,
) -> tuple[int, str, str]:
    """SIGINT the process once `reached(process)` holds; (exit code, stdout, stderr).

    It runs in its own process group, so whatever it started (a local Ray) is killed with it if it
    does not end. SIG_DFL in the child: a test run from a non-interactive shell's background job
    inherits SIGINT ignored.
    """
    driver = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    driver.started = time.monotonic()  # for `reached`: how long it has been running
    try:
        deadline = time.monotonic() + reach_s
        while not reached(driver) and driver.poll() is None:
            assert time.monotonic() < deadline, f"never reached in {reach_s:g} s: {what}"
            time.sleep(0.02)
        assert driver.poll() is None, driver.communicate()
        driver.send_signal(signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=end_s)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever is left in its process group
        except ProcessLookupError:
            pass
    return driver.returncode, stdout, stderr
