"""The `birdgen-ray` command line (the top floor): one module per command, each built from its
config's declared options (config_command.py); what several commands share is in options.py.

`app` is imported on first use, so that one command's module (or options.py) can be imported
without loading every command's dependencies.
"""

from __future__ import annotations

from typing import Any

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def run() -> None:
    """The `birdgen-ray` console script: the commands' imports (numpy, pyarrow, matplotlib) run with
    Ctrl-C held (see schedule/interrupts.py), and a Ctrl-C before a command starts exits 130 with
    one line, no traceback."""
    import sys

    from birdgen_ray.schedule.interrupts import sigint_held

    try:
        with sigint_held("start-up"):
            from birdgen_ray.cli.main import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing was started\n")
        raise SystemExit(INTERRUPTED_EXIT) from None
    app()


def __getattr__(name: str) -> Any:
    if name == "app":
        from birdgen_ray.cli.main import app

        return app
    raise AttributeError(f"module 'birdgen_ray.cli' has no attribute {name!r}")
