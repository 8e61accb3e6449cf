"""Fault injection for the tests, registered by the test suite: the package reads none of it.

The tests steer it with environment variables, which Ray hands to its workers (`--actor-env`,
`RunConfig.actor_env`, a raylet's own environment):
  BIRDGEN_NULL_FAIL_LABEL=<label>   rows with that label raise RuntimeError
  BIRDGEN_NULL_SLEEP_S=<seconds>    sleep this long per row (so a test can kill an actor mid-shard)
  BIRDGEN_NULL_HANG_LABEL=<label>   rows with that label hang (BIRDGEN_NULL_HANG_S, default a day)
  BIRDGEN_NULL_SILENT_LABEL=<label> rows with that label come out silent (they fail the quality gate)
  BIRDGEN_NULL_LOAD_S=<seconds>     sleep this long when built (a slow model load, for lost-node tests)
  BIRDGEN_WRITE_DELAY_S=<seconds>   an actor sleeps this long before each commit (a slow store)
  BIRDGEN_VERIFY_DELAY_S=<seconds>  `verify` sleeps this long before each sidecar write

`install()` puts them in: the null generator becomes FaultyNullGenerator, and the actor's commit
and verify's sidecar write are slowed when asked. It patches a module once it is imported, so a
process that never imports it pays nothing (and `import birdgen_ray.config` still loads no pyarrow).
conftest.py installs them in the test process and puts tests/hooks/ on PYTHONPATH, whose
sitecustomize.py installs them in every child: Ray's workers, the CLI subprocesses.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import time
from functools import wraps
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOKS_DIR = Path(__file__).resolve().parent / "hooks"
PYTHONPATH = os.pathsep.join([str(HOOKS_DIR), str(REPO)])  # for a child process: the hooks, and this checkout

FAIL_LABEL_ENV = "BIRDGEN_NULL_FAIL_LABEL"
SLEEP_ENV = "BIRDGEN_NULL_SLEEP_S"
HANG_LABEL_ENV = "BIRDGEN_NULL_HANG_LABEL"
HANG_S_ENV = "BIRDGEN_NULL_HANG_S"
SILENT_LABEL_ENV = "BIRDGEN_NULL_SILENT_LABEL"
LOAD_SLEEP_ENV = "BIRDGEN_NULL_LOAD_S"
WRITE_DELAY_ENV = "BIRDGEN_WRITE_DELAY_S"
VERIFY_DELAY_ENV = "BIRDGEN_VERIFY_DELAY_S"


def _seconds(name: str) -> float:
    return float(os.environ.get(name) or 0.0)


def _sleep_if_set(name: str) -> None:
    if _seconds(name) > 0:  # only when asked: the per-row sleep hook test counts every sleep
        time.sleep(_seconds(name))


def faulty_null_generator(NullGenerator: type) -> type:
    class FaultyNullGenerator(NullGenerator):
        """The null generator with the fail, sleep, hang, silent and slow-load hooks (read per batch)."""

        def __init__(self, *args, **kwargs):
            _sleep_if_set(LOAD_SLEEP_ENV)
            super().__init__(*args, **kwargs)
            self._fail_label, self._sleep_s = None, 0.0

        def generate(self, rows):
            self._fail_label, self._sleep_s = os.environ.get(FAIL_LABEL_ENV), _seconds(SLEEP_ENV)
            return super().generate(rows)

        def _one(self, row):
            if self._sleep_s > 0:
                time.sleep(self._sleep_s)
            if row.label == os.environ.get(HANG_LABEL_ENV):
                time.sleep(float(os.environ.get(HANG_S_ENV) or 24 * 3600))  # a stuck GPU call
            if self._fail_label is not None and row.label == self._fail_label:
                raise RuntimeError(f"injected failure for {row.clip_id}")
            return super()._one(row)

        def _raw(self, row):
            raw = super()._raw(row)
            if row.label == os.environ.get(SILENT_LABEL_ENV):
                raw[:] = 0.0
            return raw

    return FaultyNullGenerator


def _slowed(write, delay_env: str):
    @wraps(write)
    def slow_write(*args, **kwargs):
        _sleep_if_set(delay_env)
        return write(*args, **kwargs)

    return slow_write


def _patch_null(module) -> None:
    module.NullGenerator = faulty_null_generator(module.NullGenerator)


def _patch_actor(module) -> None:
    module.ShardWorker._commit = _slowed(module.ShardWorker._commit, WRITE_DELAY_ENV)


def _patch_verify(module) -> None:
    module.publish_sidecar = _slowed(module.publish_sidecar, VERIFY_DELAY_ENV)


PATCHES = {
    "birdgen_ray.generate.null": _patch_null,
    "birdgen_ray.schedule.actor": _patch_actor,
    "birdgen_ray.verify.existing": _patch_verify,
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a module in PATCHES so its patch runs right after it."""

    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, PATCHES[name])
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        self.patch(module)

    def __getattr__(self, name):  # get_source, get_filename, is_package, ...: the real loader's
        return getattr(self.loader, name)


def install() -> None:
    """Patch the modules already imported; patch the others as they are imported. Once per process."""
    if any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        return
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PatchOnImport())
