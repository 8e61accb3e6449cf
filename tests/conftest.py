"""Shared fixtures: one local Ray for the whole test session, no dashboard, with token auth."""

from __future__ import annotations

import os
import secrets

import pytest

from tests import fault_hooks

# Token auth, as on a user's machine (Ray's servers listen on all interfaces): one fresh token for the
# session, in the environment, so that every Ray process and subprocess of the tests shares it and
# no ~/.ray/auth_token is written. A RAY_AUTH_MODE set by the caller is respected.
if "RAY_AUTH_MODE" not in os.environ:
    os.environ["RAY_AUTH_MODE"] = "token"
    if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The fault hooks (tests/fault_hooks.py): in this process, and, through tests/hooks/sitecustomize.py on
# PYTHONPATH, in every child (the local Ray's workers, the CLI subprocesses), before any of them starts.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [fault_hooks.PYTHONPATH, os.environ.get("PYTHONPATH")]))
fault_hooks.install()


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


@pytest.fixture(scope="module")
def tiny_cache_and_one_thread(tmp_path_factory):
    """A private tiny-model cache; one torch thread (OpenMP spinning is pathological on a busy 2-core box)."""
    import torch

    patch = pytest.MonkeyPatch()
    patch.setenv("BIRDGEN_CACHE", str(tmp_path_factory.mktemp("birdgen-cache")))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    patch.undo()
