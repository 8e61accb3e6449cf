"""Ray start-up: join the cluster a job runs in, or start a local one."""

from __future__ import annotations

import os
import signal
import threading

from birdgen_ray.config import RunConfig


def init_ray(run: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    sigterm = signal.getsignal(signal.SIGTERM)
    if run.address or os.environ.get("RAY_ADDRESS"):
        # Inside a Ray job or against a running cluster: join it, never pass resources.
        ray.init(address=run.address or None, log_to_driver=False)
    else:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, sigterm)  # ray.init puts its own sys.exit there: keep the caller's
