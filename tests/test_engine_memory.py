"""The prompt-encoding cache of AudioLDM2Engine (tiny model, CPU): what it keeps alive."""

from __future__ import annotations

from collections import Counter

import pytest

from birdgen_ray.config import EngineConfig, GenerationConfig
from birdgen_ray.generate.engine import AudioLDM2Engine

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")

WORDS = [
    "wren",
    "owl",
    "frog",
    "cricket",
    "robin",
    "crow",
    "gull",
    "finch",
    "lark",
    "tern",
    "hawk",
    "duck",
    "swan",
    "dove",
    "jay",
    "kite",
    "rook",
    "teal",
    "wolf",
    "bear",
    "deer",
    "seal",
    "bat",
    "bee",
]


def same_length_texts(pipe, count: int) -> list[str]:
    """Texts with equal CLAP and Flan-T5 token lengths: the encoder encodes them as one group."""
    texts = [f"a {word} calls" for word in WORDS]
    lengths = {t: (len(pipe.tokenizer(t).input_ids), len(pipe.tokenizer_2(t).input_ids)) for t in texts}
    length, members = Counter(lengths.values()).most_common(1)[0]
    assert members >= count, f"only {members} texts share token lengths {length}"
    return [t for t in texts if lengths[t] == length][:count]


def held_bytes(tensors) -> int:
    """Bytes of the distinct storages the tensors keep alive (a view keeps its whole base)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def test_an_evicted_encoding_frees_its_memory_even_when_encoded_with_others():
    engine = AudioLDM2Engine(GenerationConfig(model="tiny", num_inference_steps=2), EngineConfig(device="cpu"))
    encoder = engine.encoder
    encoder.cache_size = 1
    texts = same_length_texts(engine.pipe, 6)

    encoder.encode_many(texts)  # one group of 6; the cache keeps only the last

    (kept,) = encoder._cache.values()
    tensors = [kept.clap_text, kept.t5_embeds, kept.t5_mask, kept.generated_embeds]
    assert held_bytes(tensors) == sum(t.nbytes for t in tensors)
