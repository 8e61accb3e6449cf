"""A small, randomly initialised but structurally faithful AudioLDM2, built offline and cached.

`--model tiny` must exercise the real code path (every component class of the hub checkpoint, saved
with `save_pretrained` and loaded back through `from_pretrained`) without the hub. The components
come from random_model.py (seeded CPU init) and the tokenizers from tokenizers.py (fixed corpus),
so the tiny model is byte-identical on every machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from birdgen_ray.config import TINY_MODEL_VERSION
from birdgen_ray.models.random_model import build_pipeline, save_atomically
from birdgen_ray.models.tokenizers import clap_tokenizer, t5_tokenizer

# bumped (in config.py) whenever the configs or seed below, the shipped tokenizer files or the init
# (random_model.py) change
TINY_VERSION = TINY_MODEL_VERSION
TINY_SEED = 1234

# Stand-in tokenizer sizes; the models' vocabularies are sized to fit them.
CLAP_TOKENIZER_MAX_LENGTH = 64  # the real RoBERTa tokenizer pads every text to 512
T5_TOKENIZER_MAX_LENGTH = 128  # as flan-t5 in AudioLDM2

TINY_CONFIGS: dict[str, dict] = {
    "text_encoder": {
        "_class_name": "ClapModel",
        "text_config": {
            "vocab_size": 1000,
            "hidden_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
            "max_position_embeddings": CLAP_TOKENIZER_MAX_LENGTH + 2,  # positions start after padding_idx=1
            "type_vocab_size": 1,
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "layer_norm_eps": 1e-5,
            "projection_dim": 16,
        },
        "audio_config": {
            "spec_size": 64,
            "num_mel_bins": 64,
            "window_size": 4,
            "patch_size": 2,
            "patch_stride": [2, 2],
            "patch_embed_input_channels": 1,
            "patch_embeds_hidden_size": 16,
            "hidden_size": 32,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "intermediate_size": 37,
            "enable_fusion": False,
            "projection_dim": 16,
        },
        "projection_dim": 16,
    },
    "feature_extractor": {
        "_class_name": "ClapFeatureExtractor",
        "feature_size": 64,
        "sampling_rate": 48000,
        "hop_length": 7900,  # 10 s -> 61 frames, within spec_size 64
        "max_length_s": 10,
        "fft_window_size": 1024,
        "frequency_min": 50,
        "frequency_max": 14000,
        "padding": "repeatpad",
        "truncation": "rand_trunc",
    },
    "text_encoder_2": {
        "_class_name": "T5EncoderModel",
        "vocab_size": 1000,
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 2,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    },
    "language_model": {
        "_class_name": "GPT2LMHeadModel",
        "vocab_size": 1000,
        "n_positions": 256,  # projection sequence (<= 4 + T5 length + 1) plus 8 generated
        "n_embd": 16,
        "n_layer": 2,
        "n_head": 2,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "max_new_tokens": 8,
    },
    "projection_model": {
        "_class_name": "AudioLDM2ProjectionModel",
        "text_encoder_dim": 16,
        "text_encoder_1_dim": 32,
        "langauge_model_dim": 16,  # sic: diffusers' parameter name
    },
    "unet": {
        "_class_name": "AudioLDM2UNet2DConditionModel",
        "sample_size": 32,
        "in_channels": 8,
        "out_channels": 8,
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        # both conditioning paths: GPT2 states (dim 16) and Flan-T5 states (dim 32)
        "cross_attention_dim": [[None, 16, 32], [None, 16, 32]],
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "vae": {
        "_class_name": "AutoencoderKL",
        "in_channels": 1,
        "out_channels": 1,
        "latent_channels": 8,
        "block_out_channels": [16, 32, 32],  # three blocks: 4x down-sampling like the real VAE
        "layers_per_block": 1,
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "norm_num_groups": 8,
        "scaling_factor": 0.5,
    },
    "vocoder": {
        "_class_name": "SpeechT5HifiGan",
        "model_in_dim": 64,
        "sampling_rate": 16000,
        "upsample_initial_channel": 32,
        "upsample_rates": [5, 4, 2, 2, 2],  # hop 160: 100 mel frames per second, as the real vocoder
        "upsample_kernel_sizes": [16, 16, 8, 4, 4],
        "resblock_kernel_sizes": [3, 7],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        "normalize_before": False,
    },
    "scheduler": {
        "_class_name": "DDIMScheduler",
        "num_train_timesteps": 1000,
        "beta_start": 0.0015,
        "beta_end": 0.0195,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "prediction_type": "epsilon",
    },
}


def build_tiny(out_dir: str | Path) -> Path:
    """Build the tiny AudioLDM2 and save it to out_dir (which must not exist yet)."""
    tokenizer = clap_tokenizer(CLAP_TOKENIZER_MAX_LENGTH)
    tokenizer_2 = t5_tokenizer(T5_TOKENIZER_MAX_LENGTH)
    pipe = build_pipeline(TINY_CONFIGS, tokenizer, tokenizer_2, seed=TINY_SEED)
    return save_atomically(pipe, Path(out_dir))


def cache_root() -> Path:
    return Path(os.environ.get("BIRDGEN_CACHE") or Path.home() / ".cache" / "birdgen-ray")


def ensure_tiny(root: str | Path | None = None) -> Path:
    """The cached tiny model dir, built on first use (safe when several actors race to build it)."""
    out_dir = Path(root or cache_root()) / f"tiny-{TINY_VERSION}"
    if not (out_dir / "model_index.json").exists():
        build_tiny(out_dir)
    return out_dir
