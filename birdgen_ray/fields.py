"""Config fields that are also command-line options, declared once, beside the field.

`option(default, help, ...)` is a dataclass field that carries its command-line face: flag, help,
bounds, choices, and how the typed text becomes the field's value. The CLI builds a command from a
config's declarations (`cli/config_command.py`) and the config from what was typed
(`build_config`), so an option has one name, one default and one help text, and the path from the
command line to the engine is the config itself. Fields without `option` are not on the command
line (they keep their defaults, or the runner fills them in).
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import Any, Callable, Iterable, Iterator, get_type_hints


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
    type: Any
    default: Any  # MISSING: required
    option: Option

    @property
    def flag(self) -> str:
        """The name a user types, for messages: '--steps', '--compile'."""
        if self.option.flags:
            return self.option.flags[0].split("/")[0]
        return "--" + self.name.replace("_", "-")


def declared_options(config: type) -> Iterator[Declared]:
    """Every option of `config` and of the configs nested in it, in declaration order."""
    hints = get_type_hints(config)
    for spec in fields(config):
        kind = hints[spec.name]
        if is_dataclass(kind):
            for inner in declared_options(kind):
                yield replace(inner, path=(spec.name, *inner.path))
        elif "option" in spec.metadata:
            yield Declared((), spec.name, kind, _default(spec), spec.metadata["option"])


def build_config(config: type, values: dict[str, Any]) -> Any:
    """`config` (and the configs nested in it) from typed values by option name. None keeps the
    field's default; a ValueError (from `parse` or the config's own checks) names the option."""
    hints = get_type_hints(config)
    kwargs: dict[str, Any] = {}
    for spec in fields(config):
        kind = hints[spec.name]
        if is_dataclass(kind):
            kwargs[spec.name] = build_config(kind, values)
            continue
        value = values.get(spec.name)
        if "option" not in spec.metadata or value is None:
            continue
        face: Option = spec.metadata["option"]
        if face.parse is not None:
            value = face.parse(value, Declared((), spec.name, kind, None, face).flag)
        if face.spreads:
            kwargs.update(value)
        else:
            kwargs[spec.name] = value
    return config(**kwargs)


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
