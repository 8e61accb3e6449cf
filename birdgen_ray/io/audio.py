"""Audio I/O: decode any format soundfile reads, encode WAV/OGG/FLAC, resample with soxr.

Every part that touches audio bytes goes through here, so a clip, a reference recording and an
exported file are decoded, mixed down and resampled the same way.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import numpy as np
import soxr

# soundfile format and subtype per file extension; Vorbis is what BirdCLEF ships.
ENCODINGS = {"ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
# What the BirdCLEF data and field recorders use; MP3 needs libsndfile >= 1.1 (soundfile's wheels).
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac", ".mp3")


class AudioReadError(ValueError):
    """A recording that cannot be decoded; the message names it."""


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr high quality); float32 mono out, a copy-free no-op when equal."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return audio
    return np.asarray(soxr.resample(audio, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def fit_length(audio: np.ndarray, num_samples: int) -> np.ndarray:
    """Trim or zero-pad the end to exactly `num_samples` (resampling can be off by a sample)."""
    if len(audio) >= num_samples:
        return audio[:num_samples]
    return np.pad(audio, (0, num_samples - len(audio)))


def encode_audio(audio: np.ndarray, sample_rate: int, audio_format: str = "wav") -> bytes:
    """Encoded bytes (wav/flac: 16-bit PCM, ogg: Vorbis); samples are clipped to [-1, 1] first."""
    fmt, subtype = ENCODINGS[audio_format]
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    buffer = io.BytesIO()
    import soundfile as sf  # here, not at the top: the engine imports this module and never reads or writes files

    sf.write(buffer, clipped, int(sample_rate), format=fmt, subtype=subtype)
    return buffer.getvalue()


def encode_wav(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes; samples are clipped to [-1, 1] first so nothing wraps around."""
    return encode_audio(audio, sample_rate, "wav")


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """WAV bytes back to (float32 samples, sample rate)."""
    import soundfile as sf

    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio, int(rate)


def decode_audio(source: bytes | BinaryIO, name: str = "audio") -> tuple[np.ndarray, int]:
    """Any format soundfile reads (OGG Vorbis, WAV, FLAC, MP3) -> (float32 mono, rate).

    Channels are averaged. `name` is what an error calls the recording.
    """
    import soundfile as sf

    fh = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        audio, rate = sf.read(fh, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioReadError(f"{name}: not a readable audio file ({exc})") from None
    return audio.mean(axis=1, dtype=np.float32), int(rate)


def read_audio(
    uri: str | os.PathLike, sample_rate: int | None = None, storage_options: dict[str, Any] | None = None
) -> tuple[np.ndarray, int]:
    """A recording on local disk or object storage as float32 mono, resampled to `sample_rate` if given."""
    import fsspec  # here, not at the top: the engine imports this module and must not load fsspec

    uri = os.fspath(uri)
    try:
        with fsspec.open(uri, "rb", **(storage_options or {})) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise AudioReadError(f"{uri}: file not found") from None
    audio, rate = decode_audio(data, name=uri)
    if sample_rate is not None and rate != sample_rate:
        audio, rate = resample(audio, rate, sample_rate), sample_rate
    return audio, rate
