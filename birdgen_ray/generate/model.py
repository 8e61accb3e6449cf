"""Load a pipeline: a built-in tiny model, a hub id, or a local snapshot directory.

All of them go through the same `from_pretrained` path. Weights load from safetensors only and no
remote code runs. The model family is read from the snapshot's `model_index.json` (`_class_name`):
  - AudioLDM2Pipeline (16 kHz, band to 8 kHz). The hub's `model_index.json` declares `GPT2Model` for
    the language model, which cannot generate under transformers 5, so the language model is always
    loaded as `GPT2LMHeadModel` and passed in explicitly;
  - StableAudioPipeline (Stable Audio Open 1.0: 44.1 kHz stereo, band to 22.05 kHz).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from birdgen_ray.config import TINY_MODEL, TINY_STABLE_AUDIO_MODEL
from birdgen_ray.models import tiny, tiny_stable_audio

# model_index.json's _class_name -> the family name the engine picks its renderer by
FAMILIES = {"AudioLDM2Pipeline": "audioldm2", "StableAudioPipeline": "stable-audio-open"}


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
    if model == TINY_STABLE_AUDIO_MODEL:
        return str(tiny_stable_audio.ensure_tiny()), tiny_stable_audio.model_dir_name()
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ModelLoadError(f"model directory {expanded} has no model_index.json (not a diffusers snapshot)")
        return expanded, Path(expanded).resolve().name
    if _looks_like_path(model) or os.path.exists(expanded):
        raise ModelLoadError(f"model directory not found: {expanded}")
    return model, model  # a hub id such as cvssp/audioldm2 (read from the local hub cache when offline)


def _model_index(source: str) -> dict:
    """The snapshot's model_index.json: from the directory, or from the hub (its local cache when offline)."""
    path = Path(source) / "model_index.json"
    try:
        if not path.is_file():
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "model_index.json"))
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # hub errors are OSErrors; a broken JSON a ValueError
        raise ModelLoadError(f"could not read model_index.json of model {source!r}: {exc}") from exc


def model_family(source: str) -> str:
    """'audioldm2' or 'stable-audio-open', from model_index.json's _class_name; one line naming anything else."""
    class_name = _model_index(source).get("_class_name")
    if class_name not in FAMILIES:
        raise ModelLoadError(
            f"model {source!r} is a {class_name or 'pipeline without _class_name'}; birdgen-ray runs "
            f"{' and '.join(FAMILIES)} snapshots"
        )
    return FAMILIES[class_name]


def load_pipeline(model: str, device: str | None = None, dtype: torch.dtype | None = None):
    """Return (pipeline on `device`, model_id). fp16 on CUDA, fp32 elsewhere, unless `dtype` says
    otherwise (tests load fp16 on the CPU to get the weights a GPU actor gets). The pipeline's family
    is `pipeline_family(pipe)`."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    # one progress bar per component and weight file would flood every actor's log
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    source, model_id = resolve_model(model)
    family = model_family(source)
    device = resolve_device(device)
    if dtype is None:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
    try:
        pipe = _load_audioldm2(source, dtype) if family == "audioldm2" else _load_stable_audio(source, dtype)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ModelLoadError(f"could not load {family} model {model!r} (from {source}): {exc}") from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), model_id


def pipeline_family(pipe) -> str:
    return FAMILIES[type(pipe).__name__]


def _load_audioldm2(source: str, dtype: torch.dtype):
    from diffusers import AudioLDM2Pipeline
    from transformers import GPT2LMHeadModel

    language_model = GPT2LMHeadModel.from_pretrained(
        source, subfolder="language_model", dtype=dtype, use_safetensors=True, trust_remote_code=False
    )
    return AudioLDM2Pipeline.from_pretrained(source, language_model=language_model, dtype=dtype, use_safetensors=True)


def _load_stable_audio(source: str, dtype: torch.dtype):
    """Stable Audio Open 1.0 (gated on the hub: accept its licence there and log in, or pass a snapshot)."""
    from diffusers import StableAudioPipeline

    return StableAudioPipeline.from_pretrained(source, dtype=dtype, use_safetensors=True)
