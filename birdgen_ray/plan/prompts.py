"""Prompt templates (TOML or YAML) and the prompt of one synthetic clip.

Every choice for clip `take` of class `label` comes from sha256(plan seed, label, take, what), never
from a shared random stream: the k-th clip of a class is the same row whatever else is planned.
The file format is described in birdgen_ray/data/prompt_templates.toml (the shipped defaults).
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from birdgen_ray.plan.metadata import ClassStats
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT

VARIABLES = ("common_name", "scientific_name", "call_type", "sound", "habitat", "style", "label", "taxon_class")
_LIST_KEYS = ("templates", "call_types", "habitats", "styles")
_SECTION_KEYS = set(_LIST_KEYS) | {"sounds", "negative_prompt"}
_SPACES = re.compile(r"\s+")
SEED_LIMIT = 2**31  # seeds stay in [0, 2**31): valid for torch, numpy and every sampler


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class TaxonTemplates:
    templates: tuple[str, ...]
    call_types: tuple[str, ...]  # used when a class has no `type` values of its own
    habitats: tuple[str, ...]
    styles: tuple[str, ...]
    sounds: dict[str, tuple[str, ...]]  # call-type word -> sound phrases; "default" always present
    negative_prompt: str


@dataclass(frozen=True)
class PromptTemplates:
    default: TaxonTemplates
    classes: dict[str, TaxonTemplates]  # lower-cased taxon class -> templates
    ignore_call_types: frozenset[str]
    source: str
    digest: str  # sha256 of the file's bytes, recorded in the plan

    def for_class(self, taxon_class: str) -> TaxonTemplates:
        return self.classes.get(taxon_class.strip().lower(), self.default)


@dataclass(frozen=True)
class ClipPrompt:
    prompt: str
    negative_prompt: str
    call_type: str
    seed: int


def load_templates(path: str | Path | None = None) -> PromptTemplates:
    """Read a template file (.toml, .yaml or .yml); None reads the shipped defaults."""
    if path is None:
        data_file = resources.files("birdgen_ray") / "data" / "prompt_templates.toml"
        raw, source = data_file.read_bytes(), "birdgen_ray/data/prompt_templates.toml"
    else:
        try:
            raw, source = Path(path).read_bytes(), str(path)
        except OSError as exc:
            raise TemplateError(f"templates file {path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
        if source.lower().endswith((".yaml", ".yml")):
            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise TemplateError(f"templates file {source}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"templates file {source}: expected a table at the top level")
    return _parse(data, source, hashlib.sha256(raw).hexdigest())


def _parse(data: dict, source: str, digest: str) -> PromptTemplates:
    def fail(key: str, why: str) -> TemplateError:
        return TemplateError(f"templates file {source}: '{key}': {why}")

    negative = data.get("negative_prompt", DEFAULT_NEGATIVE_PROMPT)
    if not isinstance(negative, str):
        raise fail("negative_prompt", "must be a string")
    ignore = data.get("ignore_call_types", [])
    if not isinstance(ignore, list) or not all(isinstance(v, str) for v in ignore):
        raise fail("ignore_call_types", "must be a list of strings")

    base = {"negative_prompt": negative}
    default = _section(data.get("default", {}), base, "default", fail)
    sections = data.get("classes", {})
    if not isinstance(sections, dict):
        raise fail("classes", "must be a table of taxon class sections")
    merged_default = _as_dict(default)
    classes = {
        name.strip().lower(): _section(section, merged_default, f"classes.{name}", fail)
        for name, section in sections.items()
    }
    return PromptTemplates(default, classes, frozenset(v.strip().lower() for v in ignore), source, digest)


def _as_dict(t: TaxonTemplates) -> dict:
    return {
        "templates": list(t.templates),
        "call_types": list(t.call_types),
        "habitats": list(t.habitats),
        "styles": list(t.styles),
        "sounds": {k: list(v) for k, v in t.sounds.items()},
        "negative_prompt": t.negative_prompt,
    }


def _section(section, inherited: dict, key: str, fail) -> TaxonTemplates:
    if not isinstance(section, dict):
        raise fail(key, "must be a table")
    unknown = sorted(set(section) - _SECTION_KEYS)
    if unknown:
        raise fail(key, f"unknown key(s) {unknown}; allowed: {sorted(_SECTION_KEYS)}")
    values = {**inherited, **section}
    if "sounds" in section:  # a section's sounds extend the inherited ones key by key
        values["sounds"] = {**inherited.get("sounds", {}), **section["sounds"]}
    for name in _LIST_KEYS:
        items = values.get(name)
        if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
            raise fail(f"{key}.{name}", "must be a non-empty list of non-empty strings")
    for i, template in enumerate(values["templates"]):
        _check_template(template, f"{key}.templates[{i}]", fail)
    sounds = values.get("sounds")
    if not isinstance(sounds, dict) or "default" not in sounds:
        raise fail(f"{key}.sounds", "must be a table with at least a 'default' list")
    for word, phrases in sounds.items():
        if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise fail(f"{key}.sounds.{word}", "must be a non-empty list of non-empty strings")
    if not isinstance(values.get("negative_prompt"), str):
        raise fail(f"{key}.negative_prompt", "must be a string")
    return TaxonTemplates(
        templates=tuple(values["templates"]),
        call_types=tuple(values["call_types"]),
        habitats=tuple(values["habitats"]),
        styles=tuple(values["styles"]),
        sounds={word.strip().lower(): tuple(phrases) for word, phrases in sounds.items()},
        negative_prompt=values["negative_prompt"],
    )


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_template(template: str, key: str, fail) -> None:
    try:
        names = template_fields(template)
    except ValueError as exc:
        raise fail(key, f"not a valid template ({exc})") from None
    bad = sorted(n for n in names if n not in VARIABLES)
    if bad:
        raise fail(key, f"unknown variable(s) {bad}; allowed: {list(VARIABLES)}")


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


def clip_prompt(stats: ClassStats, take: int, plan_seed: int, templates: PromptTemplates) -> ClipPrompt:
    """Prompt, negative prompt, call type and seed of the `take`-th synthetic clip of a class."""
    section = templates.for_class(stats.taxon_class)
    key = (plan_seed, stats.label, take)
    own_types = sorted((t, n) for t, n in stats.call_types.items() if t and t not in templates.ignore_call_types)
    if own_types:
        call_type = _pick([t for t, _ in own_types], [n for _, n in own_types], *key, "call_type")
    else:
        call_type = _pick(section.call_types, None, *key, "call_type")
    values = {
        "common_name": stats.common_name or stats.scientific_name or stats.label,
        "scientific_name": stats.scientific_name,
        "call_type": call_type,
        "sound": _pick(sound_for(call_type, section.sounds), None, *key, "sound"),
        "habitat": _pick(section.habitats, None, *key, "habitat"),
        "style": _pick(section.styles, None, *key, "style"),
        "label": stats.label,
        "taxon_class": stats.taxon_class,
    }
    usable = [t for t in section.templates if all(values[name] for name in template_fields(t))]
    if not usable:
        raise TemplateError(
            f"templates file {templates.source}: no template for class {stats.label!r} has all its "
            f"variables filled (scientific_name is empty); add a template without it"
        )
    prompt = _SPACES.sub(" ", _pick(usable, None, *key, "template").format_map(values)).strip()
    prompt = prompt[:1].upper() + prompt[1:]
    seed = _hash(*key, "seed") % SEED_LIMIT
    return ClipPrompt(prompt, section.negative_prompt, call_type, seed)
