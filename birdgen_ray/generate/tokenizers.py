"""Stand-in tokenizers trained offline on a fixed prompt-like corpus (no hub download).

The CLAP tokenizer is byte-level BPE wrapped as RobertaTokenizerFast, the Flan-T5 one a Unigram
model wrapped as T5TokenizerFast. Training is deterministic, so the built models are byte-identical
on every machine.
"""

from __future__ import annotations

import itertools
import json

_BIRDS = [
    "Eurasian wren",
    "common cuckoo",
    "great tit",
    "blackbird",
    "song thrush",
    "robin",
    "nightingale",
    "barn owl",
    "tawny owl",
    "woodpecker",
    "chiffchaff",
    "skylark",
    "kingfisher",
    "swallow",
    "warbler",
    "bittern",
    "curlew",
    "oystercatcher",
    "frog",
    "cricket",
    "cicada",
    "howler monkey",
    "gibbon",
]
_SOUNDS = ["song", "call", "alarm call", "drumming", "chirps", "trill", "hooting", "whistle", "chorus"]
_PLACES = [
    "in a forest at dawn",
    "near a river",
    "in a wetland",
    "in tall grass at dusk",
    "in a rainforest",
    "in a city park",
    "over a lake",
    "on a windy hillside",
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


def fixed_t5_tokenizer(max_length: int):
    """A T5TokenizerFast over a fixed vocabulary written out here, not trained: whole words of the
    corpus, then single characters so that any text tokenizes, then punctuation. It does not depend on
    the installed `tokenizers` version's training behaviour. `<pad>`=0, `</s>`=1, `<unk>`=2."""
    import re
    import string

    from transformers import T5TokenizerFast

    words = sorted({word for line in tokenizer_corpus() for word in re.findall(r"[A-Za-z]+", line)})
    characters = string.ascii_letters + string.digits
    # Unigram keeps the segmentation with the highest summed score: a whole word beats its letters
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -1.0) for word in words]
    vocab += [(f"▁{char}", -4.0) for char in characters] + [(char, -5.0) for char in characters]
    vocab += [(char, -5.0) for char in string.punctuation]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)
