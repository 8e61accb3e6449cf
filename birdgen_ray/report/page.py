"""The report's HTML: one self-contained page (inline CSS, no scripts, no network) with relative links
to its PNGs and WAVs, so it works opened as a file and served over HTTP alike.
"""

from __future__ import annotations

import math
from importlib import resources

import jinja2

# Above this many clips the players load nothing until pressed: hundreds of eager players cost
# bandwidth, and browsers cap how many media players one page may hold.
EAGER_AUDIO_LIMIT = 100

# The page itself is a Jinja template shipped as package data.
TEMPLATE = (resources.files("birdgen_ray") / "data" / "report.html.j2").read_text(encoding="utf-8")


def num(value, digits: int = 2) -> str:
    """A number for the page; missing or non-finite values show as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


# Lenient about missing keys: an older summary.json without a field still renders.
_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.globals["num"] = num
_PAGE = _ENV.from_string(TEMPLATE)


def render_page(data, images: dict, clip_images: dict, clip_audio: dict, per_class: int, made_at: str) -> str:
    """The HTML text. `images` maps chart names to relative PNG paths; `clip_*` map clip ids to theirs."""
    sampled = sum(len(c.samples) for c in data.classes)
    verdicts = sorted(data.verdicts.items(), key=lambda item: (item[0] != "pass", item[0]))
    return _PAGE.render(
        data=data,
        images=images,
        clip_images=clip_images,
        clip_audio=clip_audio,
        per_class=per_class,
        made_at=made_at,
        verdicts=verdicts,
        preload="metadata" if sampled <= EAGER_AUDIO_LIMIT else "none",
    )
