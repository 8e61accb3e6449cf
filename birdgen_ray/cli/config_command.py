"""A typer command built from a typed config's declared options (fields.py).

Each `option(...)` field becomes one typer parameter with its flag, help, bounds and choices; the
command builds the config from what was typed and hands it to the command's body. A bad value the
config refuses (its own checks, or an option's `parse`) ends in one `error:` line, exit 2.
"""

from __future__ import annotations

import inspect
import types
from dataclasses import MISSING
from enum import Enum
from typing import Any, Callable, Optional, Sequence, Union, get_args, get_origin

import typer

from birdgen_ray.cli.options import choices, fail, finite
from birdgen_ray.fields import Declared, build_config, declared_options


def config_command(config: type, body: Callable[..., Any], extras: Sequence[inspect.Parameter] = ()) -> Callable:
    """A command whose options are `config`'s, plus `extras` (the command's own, e.g. --dry-run);
    it calls `body(config_object, **extras)`, and takes its name, help and examples from `body`."""
    declared = list(declared_options(config))
    params = [_parameter(option) for option in declared] + list(extras)
    names = [param.name for param in params]
    if len(set(names)) != len(names):  # two nested configs declared the same name
        raise TypeError(f"{config.__name__}: option names repeat: {sorted(n for n in names if names.count(n) > 1)}")
    extra_names = [param.name for param in extras]

    def command(**typed: Any) -> Any:
        own = {name: typed.pop(name) for name in extra_names}
        values = {name: value.value if isinstance(value, Enum) else value for name, value in typed.items()}
        try:
            built = build_config(config, values)
        except ValueError as exc:
            raise fail(str(exc)) from None
        return body(built, **own)

    # typer reads the parameters from the signature and their types from get_type_hints: both are set
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {param.name: param.annotation for param in params}
    command.__doc__, command.__name__ = body.__doc__, body.__name__
    return command


def extra_option(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    """A command's own option, not part of its config (e.g. `--verbose`)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _parameter(declared: Declared) -> inspect.Parameter:
    face = declared.option
    kind = _without_none(face.cli_type or declared.kind)
    if face.choices:
        kind = choices(declared.name.title().replace("_", ""), face.choices)
    default = _typed_default(declared)
    annotation = Optional[kind] if default is None else kind
    info = _argument(declared) if face.argument else _option(declared, kind, default)
    return inspect.Parameter(declared.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _typed_default(declared: Declared) -> Any:
    """What the command line gives when the option is not typed: `...` (required), the field's default,
    or None for an option with `parse`, which build_config then leaves at the field's own default."""
    if declared.default is MISSING:
        return ...
    return None if declared.option.parse is not None else declared.default


def _argument(declared: Declared):
    return typer.Argument(..., help=declared.option.help, metavar=declared.option.metavar, show_default=False)


def _option(declared: Declared, kind: Any, default: Any):
    face = declared.option
    decls = face.flags or _bool_flag(declared, kind)
    default_text = face.default_text
    if kind is bool and "/" in decls[0] and default_text is None:  # an on/off pair: not "[default: cnn]"
        default_text = "on" if default else "off"
    # said in the help's own words: click would print "[default: (off)]"
    help_text = f"{face.help}  [default: {default_text}]" if default_text else face.help
    return typer.Option(
        default,
        *decls,
        help=help_text,
        min=face.min,
        max=face.max,
        metavar=face.metavar,
        show_default=not default_text and default is not None and default is not ...,
        callback=finite if kind is float else None,
    )


def _bool_flag(declared: Declared, kind: Any) -> tuple[str, ...]:
    """A switch that is off by default is one flag (`--allow-cpu`); one that is on needs its pair."""
    if kind is not bool:
        return ()
    if declared.default is not False:
        raise TypeError(f"{declared.name}: a switch on by default declares its pair, e.g. flags=('--x/--no-x',)")
    return ("--" + declared.name.replace("_", "-"),)


def _without_none(annotation: Any) -> Any:
    """int for `int | None`; anything else as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return inner[0] if len(inner) == 1 else annotation
    return annotation
