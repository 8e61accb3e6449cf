"""Model renderers (generate/renderer.py's interface), one module per family, imported when asked for."""

from __future__ import annotations

import importlib

# family -> "module:class"; a new family adds its line here (generate/renderer.py says what it implements)
RENDERERS = {
    "audioldm2": "birdgen_ray.generate.renderers.audioldm2:AudioLDM2Renderer",
    "stable-audio-open": "birdgen_ray.generate.renderers.stable_audio:StableAudioRenderer",
}


def renderer_class(family: str):
    """The renderer class of `family` (its module is imported now, not before)."""
    if family not in RENDERERS:
        raise ValueError(f"unknown model family {family!r}; expected one of {sorted(RENDERERS)}")
    module, name = RENDERERS[family].split(":")
    return getattr(importlib.import_module(module), name)
