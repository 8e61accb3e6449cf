"""An AudioLDM2Pipeline with seeded random weights, built from per-component config dicts.

Used for the built-in tiny model (tiny.py) and, from the full-size reference configs, for GPU
benchmarks: the real architecture's speed and memory without downloading weights. Every component
is initialised from a fixed torch seed on the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from birdgen_ray.models.tokenizers import clap_tokenizer, t5_tokenizer

DEFAULT_SEED = 1234  # the tiny model's seed too (tiny.TINY_SEED)

# The components of an AudioLDM2 snapshot (tokenizers aside) and the config file each one keeps.
COMPONENT_CONFIG_FILES = {
    "text_encoder": "config.json",
    "feature_extractor": "preprocessor_config.json",
    "text_encoder_2": "config.json",
    "language_model": "config.json",
    "projection_model": "config.json",
    "unet": "config.json",
    "vae": "config.json",
    "vocoder": "config.json",
    "scheduler": "scheduler_config.json",
}


def build_component(name: str, config: dict, seed: int):
    """Instantiate one component from its config dict with a seeded random init (CPU, fp32)."""
    import diffusers
    import transformers

    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    class_name = config["_class_name"]
    torch.manual_seed(seed)
    if class_name == "ClapFeatureExtractor":
        return transformers.ClapFeatureExtractor(**cfg)
    if class_name == "ClapModel":
        return transformers.ClapModel(transformers.ClapConfig(**cfg))
    if class_name == "T5EncoderModel":
        return transformers.T5EncoderModel(transformers.T5Config(**cfg))
    if class_name == "GPT2LMHeadModel":
        max_new_tokens = cfg.pop("max_new_tokens", 8)
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**cfg))
        model.config.max_new_tokens = max_new_tokens  # read by AudioLDM2Pipeline.generate_language_model
        return model
    if class_name == "SpeechT5HifiGan":
        return transformers.SpeechT5HifiGan(transformers.SpeechT5HifiGanConfig(**cfg))
    if class_name in ("AudioLDM2UNet2DConditionModel", "AudioLDM2ProjectionModel"):
        from diffusers.pipelines.audioldm2 import modeling_audioldm2

        return getattr(modeling_audioldm2, class_name).from_config(cfg)
    if hasattr(diffusers, class_name):  # AutoencoderKL, schedulers; Stable Audio's DiT, VAE and projection
        return getattr(diffusers, class_name).from_config(cfg)
    raise ValueError(f"component {name!r}: unsupported class {class_name!r}")


def audible_vocoder_init(vocoder, seed: int) -> None:
    """Re-draw the vocoder's conv weights with variance-preserving std 1/sqrt(fan_in).

    transformers initialises HiFi-GAN convs with std 0.01, so five random up-sampling stages shrink
    the waveform to ~1e-10: every clip would fail the silence gate. With this init the random model
    gives noise at roughly -30 dBFS RMS, peaks near -10 dBFS, no clipping.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in vocoder.modules():
            if isinstance(module, torch.nn.ConvTranspose1d):  # weight: (in, out, k); each output sees in*k/stride
                fan_in = module.weight.shape[0] * module.weight.shape[2] / module.stride[0]
            elif isinstance(module, torch.nn.Conv1d):  # weight: (out, in, k)
                fan_in = module.weight.shape[1] * module.weight.shape[2]
            else:
                continue
            module.weight.normal_(0.0, fan_in**-0.5, generator=generator)


def build_pipeline(configs: dict[str, dict], tokenizer, tokenizer_2, seed: int = DEFAULT_SEED):
    """An AudioLDM2Pipeline with random weights from per-component config dicts."""
    from diffusers import AudioLDM2Pipeline

    components = {
        name: build_component(name, configs[name], seed + index) for index, name in enumerate(sorted(configs))
    }
    audible_vocoder_init(components["vocoder"], seed)
    return AudioLDM2Pipeline(tokenizer=tokenizer, tokenizer_2=tokenizer_2, **components)


def save_atomically(pipe, out_dir: Path) -> Path:
    """save_pretrained into a temp dir beside out_dir, then rename: readers never see half a model."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        os.rename(tmp, out_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out_dir / "model_index.json").exists():  # lost a race to a complete copy: fine
            raise
    return out_dir


def read_component_configs(config_dir: str | Path, files: dict[str, str]) -> tuple[dict, dict[str, dict]]:
    """(model_index.json, {component: its config}) of a snapshot's config files; FileNotFoundError names
    every missing one."""
    config_dir = Path(config_dir)
    index = json.loads((config_dir / "model_index.json").read_text())
    paths = {name: config_dir / name / file for name, file in files.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{config_dir}: missing component configs: {', '.join(missing)}")
    return index, {name: json.loads(path.read_text()) for name, path in paths.items()}


def build_from_reference_configs(config_dir: str | Path, out_dir: str | Path, seed: int = DEFAULT_SEED) -> Path:
    """Full-size AudioLDM2 with random weights from shared/reference config.json files (no download).

    Speed and memory are those of the real architecture; the audio is noise. The tokenizers are the
    small stand-ins, sized to the real maximum lengths (RoBERTa 512, Flan-T5 128).
    """
    index, configs = read_component_configs(config_dir, COMPONENT_CONFIG_FILES)
    max_lengths = index.get("tokenizer_max_length", {})
    tokenizer = clap_tokenizer(int(max_lengths.get("tokenizer", 512)))
    tokenizer_2 = t5_tokenizer(int(max_lengths.get("tokenizer_2", 128)))
    pipe = build_pipeline(configs, tokenizer, tokenizer_2, seed=seed)
    return save_atomically(pipe, Path(out_dir))
