"""birdgen-ray: synthetic bird and wildlife calls with AudioLDM2 on Ray.

Reading results:

    from birdgen_ray import open_index, read_clip
    index = open_index("out/")                 # pyarrow.Table, one row per clip
    audio, rate = read_clip("out/", index["clip_id"][0].as_py())

The package is lazy, as diffusers' is: importing `birdgen_ray.config` (or the engine) loads neither
pyarrow nor fsspec. The readers are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "open_index": "birdgen_ray.index.reader",
    "read_clip": "birdgen_ray.index.reader",
    "open_embeddings": "birdgen_ray.index.embeddings",
}

__all__ = ["open_index", "read_clip", "open_embeddings", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'birdgen_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
