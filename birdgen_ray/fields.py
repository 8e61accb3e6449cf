"""Config fields that are also command-line options, declared once, beside the field.

`option(default, help, ...)` is a dataclass field that carries its command-line face (an `Option`:
flag, help, bounds, choices, and how the typed text becomes the field's value). The CLI builds a command from a
config's declarations (`cli/config_command.py`) and the config from what was typed
(`build_config`), so an option has one name, one default and one help text, and the path from the
command line to the engine is the config itself. Fields without `option` are not on the command
line (they keep their defaults, or the runner fills them in).
"""

from __future__ import annotations

import json
import re
import types
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union, get_args, get_origin, get_type_hints

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")  # also matches what pathlib makes of "s3://..."


@dataclass(frozen=True)
class Option:
    help: str
    flags: tuple[str, ...] = ()  # default: --field-name; "--on/--off" for a pair
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    default_text: str | None = None  # what [default: ...] says in place of the value ("off", "auto: ...")
    # (typed value, flag) -> the field's value; a ValueError names the flag
    parse: Callable[[Any, str], Any] | None = None
    cli_type: Any = None  # the command line's type, where `parse` makes the field's from it
    spreads: bool = False  # `parse` gives several fields of the config, as a dict
    metavar: str | None = None
    argument: bool = False  # positional, not --name


def option(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, **face: Any) -> Any:
    """A dataclass field that is also a command-line option (`face`: the fields of `Option`)."""
    return field(default=default, default_factory=factory, metadata={"option": Option(help, **face)})


@dataclass(frozen=True)
class Declared:
    """One option as the CLI sees it: where its field is, its type and its default."""

    path: tuple[str, ...]  # the nested configs above it, e.g. ("generation", "quality")
    name: str
    kind: Any  # the field's type
    default: Any  # MISSING: required
    option: Option

    @property
    def flag(self) -> str:
        return flag_of(self.name, self.option)


def flag_of(name: str, face: Option) -> str:
    """The name a user types, for messages: '--steps', '--compile'."""
    if face.flags:
        return face.flags[0].split("/")[0]
    return "--" + name.replace("_", "-")


def declared_options(config: type) -> Iterator[Declared]:
    """Every option of `config` and of the configs nested in it, in declaration order. Inside an
    optional nested config (`ReferenceOptions | None`) no option is required."""
    hints = get_type_hints(config)
    for spec in fields(config):
        nested, optional = _nested(spec, hints[spec.name])
        if nested is not None:
            for inner in declared_options(nested):
                default = None if optional and inner.default is MISSING else inner.default
                yield replace(inner, path=(spec.name, *inner.path), default=default)
        elif "option" in spec.metadata:
            yield Declared((), spec.name, hints[spec.name], _default(spec), spec.metadata["option"])


def build_config(config: type, values: dict[str, Any]) -> Any:
    """`config` (and the configs nested in it) from typed values by option name. None keeps the
    field's default; an optional nested config is None unless its required options were given.
    A ValueError (from `parse` or the config's own checks) names the option."""
    hints = get_type_hints(config)
    kwargs: dict[str, Any] = {}
    for spec in fields(config):
        kind = hints[spec.name]
        nested, optional = _nested(spec, kind)
        if nested is not None:
            kwargs[spec.name] = _nested_config(nested, optional, values)
            continue
        value = values.get(spec.name)
        if "option" not in spec.metadata or value is None:
            continue
        face: Option = spec.metadata["option"]
        if face.parse is not None:
            value = face.parse(value, flag_of(spec.name, face))
        if face.spreads:
            kwargs.update(value)
        else:
            kwargs[spec.name] = value
    return config(**kwargs)


def _nested_config(nested: type, optional: bool, values: dict[str, Any]) -> Any:
    """A nested config; an optional one (`ReferenceOptions | None`) only when its required options were
    given: None otherwise, and then any other option of it that was typed is refused by name."""
    required = _required(nested)
    if not optional or all(values.get(name) is not None for name in required):
        return build_config(nested, values)
    # typed: given and other than the default (the command line hands an untyped option its default)
    typed = [d.flag for d in declared_options(nested) if values.get(d.name) not in (None, d.default)]
    if typed:
        needs = " and ".join(flag_of(name, _option_of(nested, name)) for name in required)
        raise ValueError(f"{', '.join(typed)} needs {needs}")
    return None


def _option_of(config: type, name: str) -> Option:
    return next(spec.metadata["option"] for spec in fields(config) if spec.name == name)


def listed(help: str, *, metavar: str, default_text: str = "all", **face: Any) -> Any:
    """A tuple option typed repeated or comma-separated ('--include a,b --include c')."""
    return option((), help, cli_type=list[str], parse=split_values, metavar=metavar, default_text=default_text, **face)


def ranged(default: tuple[float, float], help: str, parse: Callable[[str, str], Any], **face: Any) -> Any:
    """A range option typed 'lo:hi' (or one number), its default shown the same way."""
    low, high = default
    shown = f"{low:g}" if low == high else f"{low:g}:{high:g}"
    return option(default, help, cli_type=str, parse=parse, default_text=shown, **{"metavar": "LO:HI", **face})


STORAGE_OPTIONS_HELP = (
    'fsspec options for s3:// and other URIs, as JSON, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\'.'
)


def storage_options_field() -> Any:
    """The `--storage-options` field of a config that reads or writes object storage."""
    return option(help=STORAGE_OPTIONS_HELP, factory=dict, cli_type=str, parse=parse_json_object)


def _nested(spec, kind: Any) -> tuple[type | None, bool]:
    """(the config, optional?) for a nested config field `X` or `X | None`; (None, False) otherwise,
    and for an option whose value is a dataclass (a parsed threshold)."""
    if "option" in spec.metadata:
        return None, False
    if is_dataclass(kind):
        return kind, False
    if get_origin(kind) in (Union, types.UnionType):
        inner = [arg for arg in get_args(kind) if arg is not type(None)]
        if len(inner) == 1 and is_dataclass(inner[0]):
            return inner[0], True
    return None, False


def _required(config: type) -> list[str]:
    return [spec.name for spec in fields(config) if "option" in spec.metadata and _default(spec) is MISSING]


def _default(spec) -> Any:
    if spec.default is not MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not MISSING else MISSING


def parse_json_object(text: str, flag: str) -> dict:
    """'{"endpoint_url": "http://..."}' -> a dict; anything else is a ValueError naming `flag`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f'{flag} must be a JSON object such as {{"endpoint_url": "http://..."}}, got {text!r}')
    return value


def parse_env_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """`["A=1", "B=x=y"]` -> {"A": "1", "B": "x=y"}; a pair without a name or '=' is a ValueError naming `flag`."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{flag} expects NAME=VALUE, got {pair!r}")
        env[name.strip()] = value
    return env


def split_values(values: Iterable[str] | None, flag: str = "") -> tuple[str, ...]:
    """'--label a,b --label c' -> ('a', 'b', 'c'): a list option taken repeated or comma-separated.

    validate_plan refuses labels with commas, so a comma always separates.
    """
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


def as_tuple(values: Iterable[Any], flag: str = "") -> tuple:
    """A repeated option's values as the tuple a frozen config holds."""
    return tuple(values)


def local_path(value: str | Path, flag: str) -> Path:
    """A path written with plain file IO: an object-storage URI is a ValueError naming `flag`."""
    if is_uri(value):
        raise ValueError(f"{flag}: {value} looks like an object-storage URI; this option takes a local path")
    return Path(value)


def is_uri(value: str | Path) -> bool:
    return bool(_URI.match(str(value)))
