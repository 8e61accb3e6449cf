"""Shared fixtures: one local Ray for the whole test session, no dashboard, no token auth."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 4 logical CPUs and 2 fake GPUs, shut down after the session."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=4,
            num_gpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()
