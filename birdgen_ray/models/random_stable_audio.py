"""A StableAudioPipeline with seeded random weights, built from per-component config dicts.

Used for the built-in tiny Stable Audio model (tiny_stable_audio.py) and, from the full-size configs
in bench/reference/stable-audio-open-1.0, for benchmarks: the real architecture's speed and memory
without the gated weights. Every component is initialised from a fixed torch seed on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from birdgen_ray.models.random_model import DEFAULT_SEED, build_component, read_component_configs, save_atomically
from birdgen_ray.models.tokenizers import fixed_t5_tokenizer

# The components of a Stable Audio Open snapshot (the tokenizer aside) and the config file each keeps.
COMPONENT_CONFIG_FILES = {
    "text_encoder": "config.json",
    "projection_model": "config.json",
    "transformer": "config.json",
    "vae": "config.json",
    "scheduler": "scheduler_config.json",
}


def build_pipeline(configs: dict[str, dict], tokenizer, seed: int = DEFAULT_SEED):
    """A StableAudioPipeline with random weights from per-component config dicts."""
    from diffusers import StableAudioPipeline

    components = {
        name: build_component(name, configs[name], seed + index) for index, name in enumerate(sorted(configs))
    }
    return StableAudioPipeline(tokenizer=tokenizer, **components)


def build_from_reference_configs(config_dir: str | Path, out_dir: str | Path, seed: int = DEFAULT_SEED) -> Path:
    """Full-size Stable Audio Open with random weights from config files (no download).

    Speed and memory are those of the real architecture; the audio is noise. The tokenizer is the
    small fixed-vocabulary stand-in, padding to the real maximum length (128 tokens).
    """
    index, configs = read_component_configs(config_dir, COMPONENT_CONFIG_FILES)
    tokenizer = fixed_t5_tokenizer(int(index.get("tokenizer_max_length", {}).get("tokenizer", 128)))
    pipe = build_pipeline(configs, tokenizer, seed=seed)
    return save_atomically(pipe, Path(out_dir))
