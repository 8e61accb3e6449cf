"""The built-in tiny AudioLDM2: saved, cached, deterministic, loaded through from_pretrained."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from birdgen_ray.generate.model import ModelLoadError, load_pipeline, model_family, pipeline_family
from birdgen_ray.models import tiny, tiny_stable_audio
from birdgen_ray.models.random_model import build_from_reference_configs


def _file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("birdgen-cache")


def test_tiny_is_saved_with_save_pretrained_and_loaded_through_from_pretrained(cache_dir, monkeypatch):
    monkeypatch.setenv("BIRDGEN_CACHE", str(cache_dir))
    pipe, model_id = load_pipeline("tiny", device="cpu")
    model_dir = cache_dir / f"tiny-{tiny.TINY_VERSION}"

    assert model_id == f"tiny-{tiny.TINY_VERSION}"
    index = json.loads((model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "AudioLDM2Pipeline"
    weights = sorted(p.name for p in model_dir.rglob("*.safetensors"))
    assert len(weights) == 7 and not list(model_dir.rglob("*.bin"))  # safetensors only
    assert type(pipe.language_model).__name__ == "GPT2LMHeadModel"
    assert type(pipe.text_encoder).__name__ == "ClapModel"
    assert type(pipe.text_encoder_2).__name__ == "T5EncoderModel"
    assert type(pipe.vocoder).__name__ == "SpeechT5HifiGan"
    # both cross-attention paths exist: GPT2 states and Flan-T5 states
    assert pipe.unet.config.cross_attention_dim[-1] == [
        None,
        pipe.language_model.config.n_embd,
        pipe.text_encoder_2.config.d_model,
    ]
    assert pipe.dtype == torch.float32  # fp32 on CPU
    # tokenizers: RoBERTa pads with id 1 (CLAP positions), T5 appends </s>
    assert pipe.tokenizer.pad_token_id == 1
    clap_ids = pipe.tokenizer("A song of a wren", padding="max_length", max_length=16).input_ids
    assert clap_ids[0] == pipe.tokenizer.bos_token_id and clap_ids[-1] == 1
    t5_ids = pipe.tokenizer_2("A song of a wren").input_ids
    assert t5_ids[-1] == pipe.tokenizer_2.eos_token_id and pipe.tokenizer_2.unk_token_id not in t5_ids


def test_tiny_cache_is_reused_without_rebuilding(cache_dir, monkeypatch):
    monkeypatch.setenv("BIRDGEN_CACHE", str(cache_dir))
    first = tiny.ensure_tiny()
    stamp = (first / "model_index.json").stat().st_mtime_ns

    def build_again(out_dir):
        raise AssertionError(f"the cached tiny model was rebuilt into {out_dir}")

    monkeypatch.setattr(tiny, "build_tiny", build_again)
    _, model_id = load_pipeline("tiny", device="cpu")

    assert tiny.ensure_tiny() == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp
    # a local snapshot dir loads through the same path and is named after the dir
    _, local_id = load_pipeline(str(first), device="cpu")
    assert local_id == first.name


def test_tiny_builds_are_byte_identical(tmp_path):
    a = tiny.build_tiny(tmp_path / "a")
    b = tiny.build_tiny(tmp_path / "b")
    digests_a, digests_b = _file_digests(a), _file_digests(b)
    assert len(digests_a) > 15
    assert digests_a == digests_b


def test_losing_a_build_race_keeps_the_complete_copy(tmp_path):
    out = tiny.build_tiny(tmp_path / "m")
    before = _file_digests(out)
    assert tiny.build_tiny(out) == out  # a second builder finds a complete copy: no error, no change
    assert _file_digests(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # its temp dir was removed


def test_missing_model_dir_gives_a_clear_error(tmp_path):
    missing = tmp_path / "no-such-snapshot"
    with pytest.raises(ModelLoadError, match=f"not found: {missing}"):
        load_pipeline(str(missing), device="cpu")
    with pytest.raises(ModelLoadError, match="model_index.json"):
        load_pipeline(str(tmp_path), device="cpu")


def test_build_from_reference_configs_reads_config_dirs(tmp_path):
    """Smoke test at tiny size: the same reader builds the full-size model on the GPU machine."""
    config_dir = tmp_path / "configs"
    index = {
        "_class_name": "AudioLDM2Pipeline",
        "tokenizer": ["transformers", "RobertaTokenizerFast"],
        "tokenizer_2": ["transformers", "T5TokenizerFast"],
        "tokenizer_max_length": {"tokenizer": tiny.CLAP_TOKENIZER_MAX_LENGTH, "tokenizer_2": 32},
    }
    for name, config in tiny.TINY_CONFIGS.items():
        index[name] = ["", config["_class_name"]]
        file = {"scheduler": "scheduler_config.json", "feature_extractor": "preprocessor_config.json"}.get(
            name, "config.json"
        )
        (config_dir / name).mkdir(parents=True)
        (config_dir / name / file).write_text(json.dumps(config))
    (config_dir / "model_index.json").write_text(json.dumps(index))

    out = build_from_reference_configs(config_dir, tmp_path / "full")
    pipe, model_id = load_pipeline(str(out), device="cpu")

    assert model_id == "full"
    assert pipe.tokenizer_2.model_max_length == 32
    assert list(pipe.unet.config.block_out_channels) == tiny.TINY_CONFIGS["unet"]["block_out_channels"]

    (config_dir / "vae" / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"{config_dir / 'vae' / 'config.json'}"):
        build_from_reference_configs(config_dir, tmp_path / "incomplete")


@pytest.mark.slow  # builds the tiny model
def test_tiny_tokenizers_come_from_the_shipped_files_not_the_installed_trainer(tmp_path, monkeypatch):
    """A `tokenizers` upgrade that trains differently must not change the tiny model (nor any pinned clip)."""
    import tokenizers.trainers

    from birdgen_ray.models.tokenizers import CLAP_FILE, T5_FILE, TOKENIZER_FILES

    def no_training(*args, **kwargs):
        raise AssertionError("the tiny model trained a tokenizer")

    monkeypatch.setattr(tokenizers.trainers, "BpeTrainer", no_training)
    monkeypatch.setattr(tokenizers.trainers, "UnigramTrainer", no_training)
    tiny.build_tiny(tmp_path / "tiny")
    pipe, _ = load_pipeline(str(tmp_path / "tiny"), device="cpu")
    shipped_clap = json.loads((TOKENIZER_FILES / CLAP_FILE).read_text())
    shipped_t5 = json.loads((TOKENIZER_FILES / T5_FILE).read_text())
    assert pipe.tokenizer.get_vocab() == shipped_clap["vocab"]
    assert [piece for piece, _ in shipped_t5["vocab"]] == [
        pipe.tokenizer_2.convert_ids_to_tokens(i) for i in range(len(shipped_t5["vocab"]))
    ]


def test_tiny_stable_audio_is_saved_and_loaded_through_from_pretrained(cache_dir, monkeypatch):
    monkeypatch.setenv("BIRDGEN_CACHE", str(cache_dir))
    pipe, model_id = load_pipeline("tiny-stable-audio", device="cpu")
    model_dir = cache_dir / tiny_stable_audio.model_dir_name()

    assert model_id == tiny_stable_audio.model_dir_name()
    assert model_family(str(model_dir)) == "stable-audio-open" and pipeline_family(pipe) == "stable-audio-open"
    assert json.loads((model_dir / "model_index.json").read_text())["_class_name"] == "StableAudioPipeline"
    assert len(list(model_dir.rglob("*.safetensors"))) == 4 and not list(model_dir.rglob("*.bin"))
    assert type(pipe.text_encoder).__name__ == "T5EncoderModel"
    assert type(pipe.transformer).__name__ == "StableAudioDiTModel"
    assert type(pipe.vae).__name__ == "AutoencoderOobleck" and pipe.vae.config.audio_channels == 2
    assert type(pipe.scheduler).__name__ == "CosineDPMSolverMultistepScheduler"
    assert pipe.vae.config.sampling_rate == 44_100 and pipe.dtype == torch.float32
    # the fixed-vocabulary T5 tokenizer: whole words are one piece each, unknown words fall back to letters
    ids = pipe.tokenizer("A song of a wren").input_ids
    assert len(ids) == 6 and ids[-1] == pipe.tokenizer.eos_token_id
    assert pipe.tokenizer.unk_token_id not in pipe.tokenizer("Zyx qwv 42").input_ids
    assert pipe.tokenizer.model_max_length == 128

    fp16, _ = load_pipeline("tiny-stable-audio", device="cpu", dtype=torch.float16)  # what a CUDA actor gets
    assert fp16.transformer.dtype == torch.float16 and fp16.vae.dtype == torch.float16


def test_tiny_stable_audio_builds_are_byte_identical(tmp_path):
    a = tiny_stable_audio.build_tiny(tmp_path / "a")
    b = tiny_stable_audio.build_tiny(tmp_path / "b")
    assert len(_file_digests(a)) > 10 and _file_digests(a) == _file_digests(b)


def test_unknown_model_family_is_one_line_naming_it(tmp_path):
    snapshot = tmp_path / "musicgen"
    snapshot.mkdir()
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "MusicLDMPipeline"}))
    with pytest.raises(ModelLoadError) as error:
        load_pipeline(str(snapshot), device="cpu")
    message = str(error.value)
    assert "MusicLDMPipeline" in message and "AudioLDM2Pipeline" in message and "\n" not in message
