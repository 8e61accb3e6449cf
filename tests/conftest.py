"""Shared fixtures: one local Ray for the whole test session, no dashboard, with token auth; and the
rule that tests needing the shared folder or an extra never skip quietly."""

from __future__ import annotations

import os
import secrets

import pytest

from tests import fault_hooks
from tests.real_audio import AUDIO

# Skips for want of something the project's own set-up provides: the shared folder beside the checkout
# (real recordings, full-size configs, KubeRay CRDs) or an optional extra. Under CI (CI=true) they fail;
# elsewhere they are counted in one loud line at the end of the run.
MUST_RUN_REASONS = ("not found at", "install birdgen-ray[", "no full-size AudioLDM2")
_must_run_skips: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionstart(session):
    if _in_ci() and not AUDIO.is_dir():
        raise pytest.UsageError(
            f"CI=true but the shared folder's recordings are not at {AUDIO}: lay shared/ beside the checkout "
            "or set BIRDGEN_SHARED_DIR (the tests that use them must run under CI)"
        )


def _must_run_reason(report) -> str | None:
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    return reason if any(marker in reason for marker in MUST_RUN_REASONS) else None


def _fail_or_count(report) -> None:
    reason = _must_run_reason(report)
    if reason is None:
        return
    if _in_ci():
        report.outcome = "failed"
        report.longrepr = f"must run under CI, but skipped: {reason}"
    else:
        _must_run_skips.append(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_or_count(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_or_count(outcome.get_result())  # a module-level skip (birdnet_or_skip) happens at collection


# The fast loop (`pytest -m "not slow"`) leaves out every test that needs one of these: a Ray, a model,
# BirdNET, an S3 server or a browser. A test that is slow for another reason says so with @pytest.mark.slow.
SLOW_FIXTURES = {"ray_local", "ray_head", "tiny_cache_and_one_thread", "s3_server", "chromium", "birdnet"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    if _must_run_skips:
        reasons = sorted(set(_must_run_skips))
        terminalreporter.write_line(
            f"!!! {len(_must_run_skips)} tests or modules of the project's own did NOT run: {'; '.join(reasons)}",
            red=True,
            bold=True,
        )


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
