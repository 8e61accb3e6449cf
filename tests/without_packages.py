"""Run Python code as if some installed packages were not: how an optional extra's absence is tested."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.real_audio import REPO

BLOCKER = """
import sys
class Block:  # every import of these top-level packages fails, as if they were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
"""


def run_without(packages: set[str], code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter where `packages` cannot be imported (the session's env, token included)."""
    script = BLOCKER.format(blocked=sorted(packages)) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)


def cli_without(packages: set[str], argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`birdgen-ray ARGV` where `packages` cannot be imported."""
    return run_without(
        packages, f"sys.argv = ['birdgen-ray', *{argv!r}]\nfrom birdgen_ray.cli import run\nrun()\n", timeout
    )
