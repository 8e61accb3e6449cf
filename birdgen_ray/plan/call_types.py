"""Xeno-canto `type` free text -> the call-type words a prompt may use.

Xeno-canto's `type` field mixes sound types ("song", "nocturnal flight call"), descriptions of the
animal ("male", "juvenile", "sex uncertain"), noise tags ("rain", "wind") and placeholders ("-", "?").
Only the first kind belongs in a prompt, and only in words AudioLDM2 was trained on (AudioCaps,
WavCaps): "flight call", "alarm call", "wing beats", not "nocturnal flight call (nfc)".

Each value is, in this order:
  dropped   a placeholder (nothing but punctuation, or one of DROPPED), a sex/age tag or a noise tag;
  mapped    to the sound word one of whose phrases it equals, else the one whose longest phrase it
            holds as whole words ("territorial call" -> "call", "call, flight call" -> "flight call");
  unmapped  nothing above: left out of the prompts (never pasted in) and listed in the summary.

A templates file may replace the vocabulary with `[call_type_words]` (sound word -> phrases) and
`drop_call_types` (values to drop); its older `ignore_call_types` key is dropped values too.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

# Sound word -> the free-text phrases that mean it. The sound word is itself a phrase of its own.
SOUND_WORDS: dict[str, tuple[str, ...]] = {
    "song": ("song", "songs", "singing", "full song", "territorial song", "advertising song"),
    "dawn song": ("dawn song", "dawn chorus"),
    "flight song": ("flight song", "song flight", "display flight"),
    "subsong": ("subsong", "sub-song", "sub song", "quiet song", "whisper song"),
    "call": ("call", "calls", "calling", "contact call", "chip", "chips", "territorial call", "advertisement call"),
    "flight call": ("flight call", "flight calls", "nocturnal flight call", "nfc", "in flight"),
    "alarm call": ("alarm", "alarm call", "alarm calls", "distress call", "mobbing", "scold", "scolding"),
    "begging call": ("begging", "begging call", "begging calls", "food begging"),
    "duet": ("duet", "duetting", "antiphonal"),
    "chorus": ("chorus", "group calls", "flock"),
    "drumming": ("drumming", "drum", "drums", "tapping"),
    "wing beats": (
        "wing beats",
        "wingbeats",
        "wing beat",
        "wing sound",
        "wing sounds",
        "wing flapping",
        "wing whirring",
        "wing noise",
        "wing whistle",
        "wing clapping",
        "wings",
    ),
    "bill clapping": ("bill clapping", "bill snapping", "bill rattling", "bill clattering"),
    "hoot": ("hoot", "hoots", "hooting"),
    "trill": ("trill", "trills", "trilling"),
    "whistle": ("whistle", "whistles", "whistling"),
    "rattle": ("rattle", "rattles"),
    "chatter": ("chatter", "chattering"),
    "screech": ("screech", "screeching", "scream", "screams"),
    "croak": ("croak", "croaking"),
    "stridulation": ("stridulation", "stridulating"),
    "echolocation": ("echolocation", "echolocation calls"),
}
# Describe the animal (sex, age), the recording (noise, background) or nothing at all.
DROPPED: tuple[str, ...] = (
    "adult",
    "juvenile",
    "immature",
    "subadult",
    "nestling",
    "fledgling",
    "chick",
    "chicks",
    "young",
    "male",
    "female",
    "males",
    "females",
    "sex uncertain",
    "life stage uncertain",
    "female and male",
    "male and female",
    "uncertain",
    "unknown",
    "not specified",
    "other",
    "no",
    "none",
    "n/a",
    "na",
    "rain",
    "wind",
    "water",
    "stream",
    "river",
    "waves",
    "surf",
    "noise",
    "background",
    "background noise",
    "traffic",
    "anthropogenic",
    "aberrant",
    "imitation",
    "mimicry",
    "mechanical sound",
    "excited",
    "dawn",
    "dusk",
    "night",
    "nocturnal",
    "in hand",
    "captive",
    "playback",
    "response to playback",
)
_SPACES = re.compile(r"\s+")
_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$")  # leading/trailing punctuation: "call?" -> "call"


def normalise(value: str) -> str:
    return _SPACES.sub(" ", _EDGES.sub("", value.strip().lower()))


@dataclass(frozen=True)
class CallTypeVocabulary:
    words: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SOUND_WORDS))
    dropped: frozenset[str] = frozenset(DROPPED)

    def classify(self, value: str) -> tuple[str, str]:
        """('mapped', sound word), ('dropped', '') or ('unmapped', '') for one `type` value."""
        text = normalise(value)
        if not text or text in self.dropped:
            return "dropped", ""
        best: tuple[int, str] | None = None
        for word, phrases in self.words.items():
            for phrase in (word, *phrases):
                if phrase == text:
                    return "mapped", word
                if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
                    best = max(best or (0, ""), (len(phrase), word))
        if best is not None:
            return "mapped", best[1]
        if all(part in self.dropped for part in re.split(r"[\s,;/]+", text) if part):
            return "dropped", ""  # "male female", "juvenile / adult"
        return "unmapped", ""


@dataclass
class CallTypeReport:
    """What became of every `type` value of a plan's classes, counted by recordings."""

    mapped: dict[str, Counter] = field(default_factory=dict)  # sound word -> original value -> n
    dropped: Counter = field(default_factory=Counter)
    unmapped: Counter = field(default_factory=Counter)

    @classmethod
    def combined(cls, reports) -> CallTypeReport:
        out = cls()
        for r in reports:
            for word, sources in r.mapped.items():
                out.mapped.setdefault(word, Counter()).update(sources)
            out.dropped.update(r.dropped)
            out.unmapped.update(r.unmapped)
        return out

    def cells(self) -> dict[str, str]:
        """The balance CSV's `call_types` (sound word:recordings) and `dropped_types` (value:recordings)."""
        left_out = Counter(self.dropped) + Counter(self.unmapped)
        return {
            "call_types": format_counts(Counter({w: sum(s.values()) for w, s in self.mapped.items()})),
            "dropped_types": format_counts(left_out),
        }

    def lines(self, limit: int = 12) -> list[str]:
        def shown(counter: Counter) -> str:
            items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
            text = ", ".join(f"{v!r} {n}" for v, n in items[:limit])
            return text + (f" ... ({len(items)} values)" if len(items) > limit else "")

        out = []
        if self.mapped:  # one line: "call 16 (<- 'contact call' 2), flight call 5, song 9"
            words = []
            for word in sorted(self.mapped):
                sources = Counter({v: n for v, n in self.mapped[word].items() if v != word})
                words.append(
                    f"{word} {sum(self.mapped[word].values())}" + (f" (<- {shown(sources)})" if sources else "")
                )
            out.append("  sound words: " + ", ".join(words))
        if self.dropped:
            out.append(f"  dropped (not a sound: sex/age, noise, placeholder): {shown(self.dropped)}")
        if self.unmapped:
            out.append(f"  left out (no known sound word): {shown(self.unmapped)}")
        return out


def map_call_types(raw: Counter, vocabulary: CallTypeVocabulary, report: CallTypeReport | None = None) -> Counter:
    """A class's raw `type` counts -> its sound-word counts; `report` (if given) collects what happened."""
    mapped: Counter = Counter()
    for value, n in sorted(raw.items()):
        kind, word = vocabulary.classify(value)
        if kind == "mapped":
            mapped[word] += n
        if report is not None:
            if kind == "mapped":
                report.mapped.setdefault(word, Counter())[normalise(value)] += n
            else:
                getattr(report, kind)[normalise(value) or value] += n
    return mapped


def format_counts(counter: Counter) -> str:
    """'call:3; song:9' for a CSV cell (sorted by word)."""
    return "; ".join(f"{k}:{n}" for k, n in sorted(counter.items()))
