"""Stand-in tokenizers for the random-weight models (no hub download), shipped as files.

The CLAP tokenizer is byte-level BPE wrapped as RobertaTokenizerFast, the Flan-T5 one a Unigram
model wrapped as T5TokenizerFast. Their vocabularies were trained once on a fixed prompt-like corpus
and ship in `birdgen_ray/data/tokenizers/`: a trainer's output changes with the installed
`tokenizers` release, and the tiny model (so every pinned clip) must not. `clap_tokenizer` and
`t5_tokenizer` build the tokenizers from those files; `python -m birdgen_ray.models.tokenizers`
retrains and rewrites them (then bump TINY_MODEL_VERSION in config.py and re-pin the clips).
"""

from __future__ import annotations

import itertools
import json
from importlib.resources import files
from pathlib import Path

VOCAB_SIZE = 1000  # both stand-ins; the random models' embedding tables are sized to fit
TOKENIZER_FILES = files("birdgen_ray") / "data" / "tokenizers"
CLAP_FILE = "clap-bpe.json"  # {"vocab": {token: id}, "merges": [[a, b], ...]}
T5_FILE = "t5-unigram.json"  # {"vocab": [[piece, log_prob], ...]}, ids 0-2 = <pad>, </s>, <unk>

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


def clap_tokenizer(max_length: int):
    """The shipped byte-level BPE as RobertaTokenizerFast; `<pad>` is id 1 (CLAP's padding_idx)."""
    from transformers import RobertaTokenizerFast

    model = json.loads((TOKENIZER_FILES / CLAP_FILE).read_text())
    tokenizer = RobertaTokenizerFast(
        vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], model_max_length=max_length
    )
    assert tokenizer.pad_token_id == 1, "CLAP's RoBERTa derives positions from padding_idx=1"
    return tokenizer


def t5_tokenizer(max_length: int):
    """The shipped Unigram model as T5TokenizerFast (appends `</s>`; `<pad>`=0, `</s>`=1, `<unk>`=2)."""
    from transformers import T5TokenizerFast

    vocab = [tuple(item) for item in json.loads((TOKENIZER_FILES / T5_FILE).read_text())["vocab"]]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)


def train_clap_vocab(vocab_size: int = VOCAB_SIZE) -> dict:
    """Train the byte-level BPE on the corpus: {"vocab": ..., "merges": ...}."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

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
    return {"vocab": model["vocab"], "merges": [list(m) for m in model["merges"]]}


def train_t5_vocab(vocab_size: int = VOCAB_SIZE) -> dict:
    """Train the Unigram model on the corpus: {"vocab": [[piece, log_prob], ...]}."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

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
    return {"vocab": [list(item) for item in vocab]}


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


def write_vocab_files(directory) -> None:
    """Retrain both vocabularies and write the files `clap_tokenizer` and `t5_tokenizer` read."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, vocab in ((CLAP_FILE, train_clap_vocab()), (T5_FILE, train_t5_vocab())):
        (directory / name).write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    write_vocab_files(Path(__file__).resolve().parents[1] / "data" / "tokenizers")
