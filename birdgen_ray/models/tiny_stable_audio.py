"""A small, randomly initialised but structurally faithful Stable Audio Open, built offline and cached.

`--model tiny-stable-audio` exercises the real code path (every component class of the hub snapshot:
T5 encoder, projection model, DiT, Oobleck VAE and the cosine DPM-Solver scheduler, saved with
`save_pretrained` and loaded back through `from_pretrained`) without the hub. The components come
from random_stable_audio.py (seeded CPU init) and the tokenizer has a fixed vocabulary
(tokenizers.fixed_t5_tokenizer), so the model is byte-identical on every machine. Like the real
model it renders 44.1 kHz stereo, so its band reaches 22.05 kHz.
"""

from __future__ import annotations

from pathlib import Path

from birdgen_ray.config import TINY_STABLE_AUDIO_MODEL_VERSION
from birdgen_ray.models.random_model import save_atomically
from birdgen_ray.models.random_stable_audio import build_pipeline
from birdgen_ray.models.tiny import cache_root
from birdgen_ray.models.tokenizers import fixed_t5_tokenizer

# bump whenever the configs, the seed, the vocabulary (tokenizers.py) or the init change
TINY_VERSION = TINY_STABLE_AUDIO_MODEL_VERSION
TINY_SEED = 4321
T5_TOKENIZER_MAX_LENGTH = 128  # as the real model (stable-audio-tools: t5-base, max_length 128)
CONDITIONING_DIM = 32  # the projection's width: text states and the seconds embeddings

TINY_CONFIGS: dict[str, dict] = {
    "text_encoder": {
        "_class_name": "T5EncoderModel",
        "vocab_size": 256,  # the fixed vocabulary has fewer pieces
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 4,
        "feed_forward_proj": "relu",  # as t5-base
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    },
    "projection_model": {
        "_class_name": "StableAudioProjectionModel",
        "text_encoder_dim": 32,
        "conditioning_dim": CONDITIONING_DIM,
        "min_value": 0,
        "max_value": 512,
    },
    "transformer": {
        "_class_name": "StableAudioDiTModel",
        "sample_size": 1024,  # latent frames: 1024 x 256 / 44100 = 5.94 s at most
        "in_channels": 8,
        "out_channels": 8,
        "num_layers": 2,
        "attention_head_dim": 8,
        "num_attention_heads": 4,
        "num_key_value_attention_heads": 2,  # grouped-query cross-attention, as the real DiT (24 / 12)
        "cross_attention_dim": 16,
        "time_proj_dim": 16,
        "global_states_input_dim": 2 * CONDITIONING_DIM,  # start and end seconds, concatenated
        "cross_attention_input_dim": CONDITIONING_DIM,
    },
    "vae": {
        "_class_name": "AutoencoderOobleck",
        "encoder_hidden_size": 16,  # the encoder ends in mean and scale: 2 x the latent channels
        "downsampling_ratios": [2, 4, 4, 8],  # hop 256 (the real VAE: 2048)
        "channel_multiples": [1, 2, 4, 8],
        "decoder_channels": 8,
        "decoder_input_channels": 8,  # the DiT's latent channels
        "audio_channels": 2,
        "sampling_rate": 44100,
    },
    "scheduler": {  # the hub snapshot's scheduler_config.json (bench/reference/stable-audio-open-1.0)
        "_class_name": "CosineDPMSolverMultistepScheduler",
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "sigma_data": 1.0,
        "sigma_max": 500.0,
        "sigma_min": 0.3,
        "sigma_schedule": "exponential",
        "solver_order": 2,
        "solver_type": "midpoint",
        "final_sigmas_type": "zero",
        "euler_at_final": False,
        "lower_order_final": True,
        "rho": 7.0,
    },
}


def build_tiny(out_dir: str | Path) -> Path:
    """Build the tiny Stable Audio model and save it to out_dir (which must not exist yet)."""
    pipe = build_pipeline(TINY_CONFIGS, fixed_t5_tokenizer(T5_TOKENIZER_MAX_LENGTH), seed=TINY_SEED)
    return save_atomically(pipe, Path(out_dir))


def model_dir_name() -> str:
    return f"tiny-stable-audio-{TINY_VERSION}"


def ensure_tiny(root: str | Path | None = None) -> Path:
    """The cached tiny model dir, built on first use (safe when several actors race to build it)."""
    out_dir = Path(root or cache_root()) / model_dir_name()
    if not (out_dir / "model_index.json").exists():
        build_tiny(out_dir)
    return out_dir
