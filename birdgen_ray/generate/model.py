"""Load an AudioLDM2 pipeline: the built-in tiny model, a hub id, or a local snapshot directory.

All three go through the same `from_pretrained` path. Weights load from safetensors only and no
remote code runs. The hub's `model_index.json` declares `GPT2Model` for the language model, which
cannot generate under transformers 5, so the language model is always loaded as `GPT2LMHeadModel`
and passed in explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from birdgen_ray.config import TINY_MODEL
from birdgen_ray.generate import tiny


class ModelLoadError(RuntimeError):
    """The model named by `--model` could not be loaded; the message names the path or hub id."""


def resolve_device(device: str | None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def _looks_like_path(model: str) -> bool:
    # a hub id is "name" or "owner/name"; anything else is meant as a directory
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model


def resolve_model(model: str) -> tuple[str, str]:
    """(what to pass to from_pretrained, model_id recorded with every clip)."""
    if model == TINY_MODEL:
        return str(tiny.ensure_tiny()), f"tiny-{tiny.TINY_VERSION}"
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ModelLoadError(f"model directory {expanded} has no model_index.json (not a diffusers snapshot)")
        return expanded, Path(expanded).resolve().name
    if _looks_like_path(model) or os.path.exists(expanded):
        raise ModelLoadError(f"model directory not found: {expanded}")
    return model, model  # a hub id such as cvssp/audioldm2 (read from the local hub cache when offline)


def load_pipeline(model: str, device: str | None = None, dtype: torch.dtype | None = None):
    """Return (AudioLDM2Pipeline on `device`, model_id). fp16 on CUDA, fp32 elsewhere, unless `dtype`
    says otherwise (tests load fp16 on the CPU to get the weights a GPU actor gets)."""
    from diffusers import AudioLDM2Pipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as transformers_logging

    # one progress bar per component and weight file would flood every actor's log
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    source, model_id = resolve_model(model)
    device = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        language_model = GPT2LMHeadModel.from_pretrained(
            source, subfolder="language_model", dtype=dtype, use_safetensors=True, trust_remote_code=False
        )
        pipe = AudioLDM2Pipeline.from_pretrained(
            source, language_model=language_model, dtype=dtype, use_safetensors=True
        )
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ModelLoadError(f"could not load AudioLDM2 model {model!r} (from {source}): {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), model_id
