"""A small, randomly initialised but structurally faithful AudioLDM2, built offline.

`--model tiny` must exercise the real code path (every component class of the hub checkpoint, saved
with `save_pretrained` and loaded back through `from_pretrained`) without the hub. The same builder
also turns the full-size reference configs into a random-weight pipeline for GPU benchmarks.

Every component is initialised from a fixed torch seed on the CPU and the tokenizers are trained on
a fixed corpus, so the tiny model is byte-identical on every machine.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

TINY_VERSION = "2"  # bump whenever the architecture, corpus or seeds below change
TINY_SEED = 1234
BUILD_COUNT = 0  # builds done by this process (tests check that the cache is reused)

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

_BIRDS = [
    "Eurasian wren", "common cuckoo", "great tit", "blackbird", "song thrush", "robin", "nightingale",
    "barn owl", "tawny owl", "woodpecker", "chiffchaff", "skylark", "kingfisher", "swallow", "warbler",
    "bittern", "curlew", "oystercatcher", "frog", "cricket", "cicada", "howler monkey", "gibbon",
]
_SOUNDS = ["song", "call", "alarm call", "drumming", "chirps", "trill", "hooting", "whistle", "chorus"]
_PLACES = [
    "in a forest at dawn", "near a river", "in a wetland", "in tall grass at dusk", "in a rainforest",
    "in a city park", "over a lake", "on a windy hillside",
]
_STYLES = [
    "clear, close-up, natural outdoor recording",
    "distant, with wind and leaves rustling",
    "field recording, high quality, no background noise",
]
_OTHER = [
    "Low quality, distorted, music, speech.",
    "noise, hum, clipping, human voice, engine, rain",
    "The sound of a hammer hitting a wooden surface.",
]


def tokenizer_corpus() -> list[str]:
    """A fixed English corpus of prompt-like sentences for training the stand-in tokenizers."""
    lines = [
        f"A {sound} of a {bird} {place}, {style}."
        for bird, sound, place, style in itertools.product(_BIRDS, _SOUNDS, _PLACES, _STYLES)
    ]
    return lines + _OTHER * 10


def train_clap_tokenizer(vocab_size: int, max_length: int):
    """Byte-level BPE wrapped as RobertaTokenizerFast; `<pad>` is id 1 (CLAP's padding_idx)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(tokenizer_corpus(), trainer)
    model = json.loads(bpe.to_str())["model"]
    tokenizer = RobertaTokenizerFast(
        vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], model_max_length=max_length
    )
    assert tokenizer.pad_token_id == 1, "CLAP's RoBERTa derives positions from padding_idx=1"
    return tokenizer


def train_t5_tokenizer(vocab_size: int, max_length: int):
    """A Unigram model wrapped as T5TokenizerFast (appends `</s>`; `<pad>`=0, `</s>`=1, `<unk>`=2)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5TokenizerFast

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    unigram.train_from_iterator(tokenizer_corpus(), trainer)
    # The trainer's float sums vary in the last bits between runs (threads) and equal scores come out
    # in any order: round the log-probs and sort, keeping the three special tokens at ids 0-2.
    trained = [(piece, round(score, 4)) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    vocab = trained[:3] + sorted(trained[3:], key=lambda item: (-item[1], item[0]))
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)


def _build_component(name: str, config: dict, seed: int):
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
    if hasattr(diffusers, class_name):  # AutoencoderKL, schedulers
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


def build_pipeline(configs: dict[str, dict], tokenizer, tokenizer_2, seed: int = TINY_SEED):
    """An AudioLDM2Pipeline with random weights from per-component config dicts."""
    from diffusers import AudioLDM2Pipeline

    components = {
        name: _build_component(name, configs[name], seed + index)
        for index, name in enumerate(sorted(configs))
    }
    audible_vocoder_init(components["vocoder"], seed)
    return AudioLDM2Pipeline(tokenizer=tokenizer, tokenizer_2=tokenizer_2, **components)


def _save_atomically(pipe, out_dir: Path) -> Path:
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


def build_tiny(out_dir: str | Path) -> Path:
    """Build the tiny AudioLDM2 and save it to out_dir (which must not exist yet)."""
    global BUILD_COUNT
    clap_vocab = TINY_CONFIGS["text_encoder"]["text_config"]["vocab_size"]
    tokenizer = train_clap_tokenizer(clap_vocab, CLAP_TOKENIZER_MAX_LENGTH)
    tokenizer_2 = train_t5_tokenizer(TINY_CONFIGS["text_encoder_2"]["vocab_size"], T5_TOKENIZER_MAX_LENGTH)
    pipe = build_pipeline(TINY_CONFIGS, tokenizer, tokenizer_2, seed=TINY_SEED)
    BUILD_COUNT += 1
    return _save_atomically(pipe, Path(out_dir))


def cache_root() -> Path:
    return Path(os.environ.get("BIRDGEN_CACHE") or Path.home() / ".cache" / "birdgen-ray")


def ensure_tiny(root: str | Path | None = None) -> Path:
    """The cached tiny model dir, built on first use (safe when several actors race to build it)."""
    out_dir = Path(root or cache_root()) / f"tiny-{TINY_VERSION}"
    if not (out_dir / "model_index.json").exists():
        build_tiny(out_dir)
    return out_dir


_CONFIG_FILES = {"scheduler": "scheduler_config.json", "feature_extractor": "preprocessor_config.json"}


def build_from_reference_configs(config_dir: str | Path, out_dir: str | Path, seed: int = TINY_SEED) -> Path:
    """Full-size AudioLDM2 with random weights from shared/reference config.json files (no download).

    Speed and memory are those of the real architecture; the audio is noise. The tokenizers are the
    small stand-ins, sized to the real maximum lengths (RoBERTa 512, Flan-T5 128).
    """
    config_dir = Path(config_dir)
    index = json.loads((config_dir / "model_index.json").read_text())
    paths = {name: config_dir / name / _CONFIG_FILES.get(name, "config.json") for name in TINY_CONFIGS}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{config_dir}: missing component configs: {', '.join(missing)}")
    configs = {name: json.loads(path.read_text()) for name, path in paths.items()}
    max_lengths = index.get("tokenizer_max_length", {})
    tokenizer = train_clap_tokenizer(1000, int(max_lengths.get("tokenizer", 512)))
    tokenizer_2 = train_t5_tokenizer(1000, int(max_lengths.get("tokenizer_2", 128)))
    pipe = build_pipeline(configs, tokenizer, tokenizer_2, seed=seed)
    return _save_atomically(pipe, Path(out_dir))
