"""Ctrl-C during start-up: held until the start-up step is done, then raised as KeyboardInterrupt.

A KeyboardInterrupt raised in the middle of `import torch`, of a C extension's import, or of
`ray.init` (its GCS, raylet and core-worker threads half up) can leave native state that crashes the
interpreter on its way out: an early Ctrl-C once ended a submit with a segfault (exit 139) instead
of 130. Inside `sigint_held()` the first SIGINT is noted, not raised; it is raised when the block
ends, at a point where Python and Ray are in a consistent state, so the normal path (lock released,
"interrupted: ..." line, exit 130) runs. Only signal and contextlib are imported here: this module
is loaded before anything heavy.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def sigint_held(what: str) -> Iterator[None]:
    """Hold SIGINT while `what` runs (main thread only); then act on it as the previous handler would."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame) -> None:
        if not received:
            sys.stderr.write(f"interrupt: stopping after {what}...\n")
        received.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if previous is signal.default_int_handler:
            raise KeyboardInterrupt
        if callable(previous):
            previous(signal.SIGINT, None)
