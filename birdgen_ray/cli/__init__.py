"""The `birdgen-ray` command line (the top floor): one module per command, options in options.py.

`app` is imported on first use, so that `birdgen_ray.cli.options` (used by jobs/submit_job.py)
does not load every command's dependencies.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from birdgen_ray.cli.main import app

        return app
    raise AttributeError(f"module 'birdgen_ray.cli' has no attribute {name!r}")
