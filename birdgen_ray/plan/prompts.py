"""The prompt of one synthetic clip.

Every choice for clip `take` of class `label` comes from sha256(plan seed, label, take, what), never
from a shared random stream: the k-th clip of a class is the same row whatever else is planned.
Templates come from templates.py; `type` values become sound words by call_types.py.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from birdgen_ray.plan.call_types import map_call_types
from birdgen_ray.plan.metadata import ClassStats
from birdgen_ray.plan.templates import (  # noqa: F401  (re-exported: the plan's public names)
    VARIABLES,
    PromptTemplates,
    TaxonTemplates,
    TemplateError,
    load_templates,
    template_fields,
)

_SPACES = re.compile(r"\s+")
SEED_LIMIT = 2**31  # seeds stay in [0, 2**31): valid for torch, numpy and every sampler


@dataclass(frozen=True)
class ClipPrompt:
    prompt: str
    negative_prompt: str
    call_type: str
    seed: int
    prompt_style: str = ""


def _hash(*parts: object) -> int:
    key = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def _pick(options: list[str] | tuple[str, ...], weights: list[int] | None, *key: object) -> str:
    """A deterministic weighted choice: the hash of `key` picks a point in the cumulative weights."""
    weights = weights or [1] * len(options)
    point = _hash(*key) % sum(weights)
    for option, weight in zip(options, weights):
        if point < weight:
            return option
        point -= weight
    raise AssertionError("unreachable")


def sound_for(call_type: str, sounds: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The call type's own key, else the longest key found as a word in it, else 'default'."""
    if call_type in sounds:
        return sounds[call_type]
    found = [w for w in sounds if w != "default" and re.search(rf"\b{re.escape(w)}\b", call_type)]
    return sounds[max(found, key=lambda w: (len(w), w))] if found else sounds["default"]


def class_call_types(stats: ClassStats, templates: PromptTemplates) -> Counter:
    """The class's `type` values as sound words (dropped and unmapped values left out), cached."""
    key = ("call_types", stats.label, tuple(sorted(stats.call_types.items())))
    if key not in templates._cache:
        templates._cache[key] = map_call_types(stats.call_types, templates.vocabulary)
    return templates._cache[key]


def clip_prompt(
    stats: ClassStats,
    take: int,
    plan_seed: int,
    templates: PromptTemplates,
    prompt_styles: tuple[str, ...] = (),
) -> ClipPrompt:
    """Prompt, negative prompt, call type, seed and prompt style of the `take`-th clip of a class.

    `prompt_styles` limits the styles mixed (empty: every style the class's section has).
    """
    section = templates.for_stats(stats)
    key = (plan_seed, stats.label, take)
    own_types = sorted(class_call_types(stats, templates).items())
    if own_types:
        call_type = _pick([t for t, _ in own_types], [n for _, n in own_types], *key, "call_type")
    else:
        call_type = _pick(section.call_types, None, *key, "call_type")
    styles = [s for s in section.templates if not prompt_styles or s in prompt_styles]
    if not styles:
        raise TemplateError(
            f"templates file {templates.source}: class {stats.label!r} has no templates of prompt style "
            f"{', '.join(prompt_styles)} (it has {', '.join(section.templates)})"
        )
    style = _pick(styles, None, *key, "prompt_style") if len(styles) > 1 else styles[0]
    values = {
        "common_name": stats.common_name or stats.scientific_name or stats.label,
        "scientific_name": stats.scientific_name if stats.common_name else "",  # never "X (X)"
        "call_type": call_type,
        "sound": _pick(sound_for(call_type, section.sounds), None, *key, "sound"),
        "habitat": _pick(section.habitats, None, *key, "habitat"),
        "style": _pick(section.styles, None, *key, "style"),
        "descriptor": _pick(section.descriptors, None, *key, "descriptor") if section.descriptors else "",
        "label": stats.label,
        "taxon_class": stats.taxon_class,
    }
    usable = [t for t in section.templates[style] if all(values[name] for name in template_fields(t))]
    if not usable:
        raise TemplateError(
            f"templates file {templates.source}: no {style} template for class {stats.label!r} has all its "
            f"variables filled (scientific_name or descriptors are empty); add a template without them"
        )
    prompt = _SPACES.sub(" ", _pick(usable, None, *key, "template").format_map(values)).strip()
    prompt = prompt[:1].upper() + prompt[1:]
    seed = _hash(*key, "seed") % SEED_LIMIT
    return ClipPrompt(prompt, section.negative_prompt, call_type, seed, style)
