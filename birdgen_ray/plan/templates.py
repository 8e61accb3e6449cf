"""Prompt template files (TOML or YAML): read, check, and resolve the section of one class.

The file format is described in birdgen_ray/data/prompt_templates.toml (the shipped defaults). A
class's section is [default], then [classes.<taxon class>], [regions.<region>], [orders.<order>],
[families.<family>], [genera.<genus>], [species.<scientific name>] and [labels.<label>] on top, each
overriding the keys it sets (habitats.py says how a class's sections are matched). A template that
uses {scientific_name} must use {common_name} too: AudioLDM2 does not know Latin names, so no prompt
names an animal by its scientific name alone.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from birdgen_ray.plan.call_types import DROPPED, SOUND_WORDS, CallTypeVocabulary, normalise
from birdgen_ray.plan.habitats import override_keys
from birdgen_ray.plan.metadata import ClassStats
from birdgen_ray.rows import DEFAULT_NEGATIVE_PROMPT

VARIABLES = (
    "common_name",
    "scientific_name",
    "call_type",
    "sound",
    "habitat",
    "style",
    "descriptor",
    "label",
    "taxon_class",
)
_LIST_KEYS = ("call_types", "habitats", "styles")
_SECTION_KEYS = set(_LIST_KEYS) | {"templates", "sounds", "negative_prompt", "descriptors"}
_OVERRIDE_TABLES = ("classes", "regions", "orders", "families", "genera", "species", "labels")
DEFAULT_PROMPT_STYLE = "descriptive"  # the style of a `templates` given as a plain list


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class TaxonTemplates:
    templates: dict[str, tuple[str, ...]]  # prompt style -> templates
    call_types: tuple[str, ...]  # used when a class has no usable `type` values of its own
    habitats: tuple[str, ...]
    styles: tuple[str, ...]  # recording styles
    sounds: dict[str, tuple[str, ...]]  # call-type word -> sound phrases; "default" always present
    negative_prompt: str
    descriptors: tuple[str, ...] = ()  # acoustic descriptors ("melodious, whistled"); may be empty


@dataclass(frozen=True)
class PromptTemplates:
    default: TaxonTemplates
    sections: dict[str, dict[str, dict]]  # "classes"/"orders"/"families"/"labels" -> lower-cased key -> raw
    vocabulary: CallTypeVocabulary
    source: str
    digest: str  # sha256 of the file's bytes, recorded in the plan
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def classes(self) -> dict[str, TaxonTemplates]:
        return {name: self.for_class(name) for name in self.sections["classes"]}

    def for_class(self, taxon_class: str) -> TaxonTemplates:
        return self._resolve(((("classes", taxon_class.strip().lower()),)))

    def for_stats(self, stats: ClassStats) -> TaxonTemplates:
        """The class's section: default < taxon class < region < order < family < genus < species < label."""
        return self._resolve(tuple(override_keys(stats)))

    @property
    def prompt_styles(self) -> list[str]:
        names = set(self.default.templates)
        for table in _OVERRIDE_TABLES:
            for raw in self.sections[table].values():
                names |= set(_styles_of(raw.get("templates", {})))
        return sorted(names)

    def _resolve(self, keys: tuple[tuple[str, str], ...]) -> TaxonTemplates:
        found = tuple((table, key) for table, key in keys if key in self.sections[table])
        if found not in self._cache:
            values = _as_dict(self.default)
            for table, key in found:
                values = _merge(values, self.sections[table][key])
            self._cache[found] = _build(values, f"{found[-1][0]}.{found[-1][1]}" if found else "default", self)
        return self._cache[found]


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


def _fail(source: str, key: str, why: str) -> TemplateError:
    return TemplateError(f"templates file {source}: '{key}': {why}")


def _parse(data: dict, source: str, digest: str) -> PromptTemplates:
    negative = data.get("negative_prompt", DEFAULT_NEGATIVE_PROMPT)
    if not isinstance(negative, str):
        raise _fail(source, "negative_prompt", "must be a string")
    dropped = set(DROPPED)
    for key in ("ignore_call_types", "drop_call_types"):
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _fail(source, key, "must be a list of strings")
        dropped |= {normalise(v) for v in values}
    words = data.get("call_type_words", SOUND_WORDS)
    if not isinstance(words, dict) or not all(
        isinstance(v, list | tuple) and all(isinstance(p, str) for p in v) for v in words.values()
    ):
        raise _fail(source, "call_type_words", "must be a table of sound word -> list of phrases")
    vocabulary = CallTypeVocabulary(
        {normalise(w): tuple(normalise(p) for p in v) for w, v in words.items()}, frozenset(dropped)
    )

    stub = PromptTemplates(None, {}, vocabulary, source, digest)  # for error messages while building
    default_raw = data.get("default", {})
    _check_section(default_raw, "default", source)
    default = _build(_merge({"negative_prompt": negative}, default_raw), "default", stub)
    sections: dict[str, dict[str, dict]] = {}
    for table in _OVERRIDE_TABLES:
        entries = data.get(table, {})
        if not isinstance(entries, dict):
            raise _fail(source, table, f"must be a table of [{table}.<name>] sections")
        sections[table] = {}
        for name, raw in entries.items():
            _check_section(raw, f"{table}.{name}", source)
            sections[table][str(name).strip().lower()] = raw
    templates = PromptTemplates(default, sections, vocabulary, source, digest)
    for table, entries in sections.items():  # every override must give a usable section on its own
        for name, raw in entries.items():
            _build(_merge(_as_dict(default), raw), f"{table}.{name}", templates)
    return templates


def _check_section(section, key: str, source: str) -> None:
    if not isinstance(section, dict):
        raise _fail(source, key, "must be a table")
    unknown = sorted(set(section) - _SECTION_KEYS)
    if unknown:
        raise _fail(source, key, f"unknown key(s) {unknown}; allowed: {sorted(_SECTION_KEYS)}")
    for name in (*_LIST_KEYS, "descriptors"):
        if name in section and not _strings(section[name], allow_empty=name == "descriptors"):
            raise _fail(source, f"{key}.{name}", "must be a non-empty list of non-empty strings")


def _styles_of(templates) -> dict[str, list]:
    return templates if isinstance(templates, dict) else {DEFAULT_PROMPT_STYLE: templates}


def _merge(inherited: dict, section: dict) -> dict:
    values = {**inherited, **section}
    # sounds and prompt styles extend the inherited ones key by key
    if "sounds" in section and isinstance(section["sounds"], dict):
        values["sounds"] = {**inherited.get("sounds", {}), **section["sounds"]}
    if "templates" in section and "templates" in inherited:
        values["templates"] = {**_styles_of(inherited.get("templates", {})), **_styles_of(section["templates"])}
    return values


def _as_dict(t: TaxonTemplates) -> dict:
    return {
        "templates": {style: list(items) for style, items in t.templates.items()},
        "call_types": list(t.call_types),
        "habitats": list(t.habitats),
        "styles": list(t.styles),
        "descriptors": list(t.descriptors),
        "sounds": {k: list(v) for k, v in t.sounds.items()},
        "negative_prompt": t.negative_prompt,
    }


def _strings(items, allow_empty: bool = False) -> bool:
    return (
        isinstance(items, list)
        and (allow_empty or bool(items))
        and all(isinstance(v, str) and v.strip() for v in items)
    )


def _build(values: dict, key: str, templates: PromptTemplates) -> TaxonTemplates:
    source = templates.source
    for name in _LIST_KEYS:
        if not _strings(values.get(name)):
            raise _fail(source, f"{key}.{name}", "must be a non-empty list of non-empty strings")
    styles = _styles_of(values.get("templates"))
    if not isinstance(styles, dict) or not styles:
        raise _fail(source, f"{key}.templates", "must be a non-empty list of non-empty strings")
    for style, items in styles.items():
        where = (
            f"{key}.templates"
            if style == DEFAULT_PROMPT_STYLE and isinstance(values["templates"], list)
            else (f"{key}.templates.{style}")
        )
        if not _strings(items):
            raise _fail(source, where, "must be a non-empty list of non-empty strings")
        for i, template in enumerate(items):
            _check_template(template, f"{where}[{i}]", source)
    sounds = values.get("sounds")
    if not isinstance(sounds, dict) or "default" not in sounds:
        raise _fail(source, f"{key}.sounds", "must be a table with at least a 'default' list")
    for word, phrases in sounds.items():
        if not _strings(phrases):
            raise _fail(source, f"{key}.sounds.{word}", "must be a non-empty list of non-empty strings")
    if not isinstance(values.get("negative_prompt"), str):
        raise _fail(source, f"{key}.negative_prompt", "must be a string")
    return TaxonTemplates(
        templates={str(style): tuple(items) for style, items in sorted(styles.items())},
        call_types=tuple(values["call_types"]),
        habitats=tuple(values["habitats"]),
        styles=tuple(values["styles"]),
        sounds={word.strip().lower(): tuple(phrases) for word, phrases in sounds.items()},
        negative_prompt=values["negative_prompt"],
        descriptors=tuple(values.get("descriptors") or ()),
    )


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check_template(template: str, key: str, source: str) -> None:
    try:
        names = template_fields(template)
    except ValueError as exc:
        raise _fail(source, key, f"not a valid template ({exc})") from None
    bad = sorted(n for n in names if n not in VARIABLES)
    if bad:
        raise _fail(source, key, f"unknown variable(s) {bad}; allowed: {list(VARIABLES)}")
    if "scientific_name" in names and "common_name" not in names:
        raise _fail(
            source, key, "uses {scientific_name} without {common_name}: AudioLDM2 does not know scientific names"
        )
