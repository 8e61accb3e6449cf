"""Model renderers (generate/renderer.py), one module per model family, named here by family."""

from __future__ import annotations

# family -> "module:class", imported when the family is asked for (a renderer module loads torch)
RENDERERS = {"stable-audio-open": "birdgen_ray.generate.renderers.stable_audio:StableAudioRenderer"}


def renderer_class(family: str):
    import importlib

    module, _, name = RENDERERS[family].partition(":")
    return getattr(importlib.import_module(module), name)
