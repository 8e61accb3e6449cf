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

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {param.name: param.annotation for param in params}
    command.__doc__, command.__name__ = body.__doc__, body.__name__
    return command


def extra_option(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    """A command's own option, not part of its config (e.g. `--verbose`)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _parameter(declared: Declared) -> inspect.Parameter:
    face = declared.option
    kind = _without_none(face.cli_type or declared.type)
    if face.choices:
        kind = choices(declared.name.title().replace("_", ""), face.choices)
    # an option with `parse` takes None (not typed) for its field's default, unless it is required
    optional = declared.default is None or (face.parse is not None and declared.default is not MISSING)
    annotation = Optional[kind] if optional else kind
    info = _argument(declared) if face.argument else _option(declared, kind)
    return inspect.Parameter(declared.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _argument(declared: Declared):
    return typer.Argument(..., help=declared.option.help, metavar=declared.option.metavar, show_default=False)


def _option(declared: Declared, kind: Any):
    face = declared.option
    default = ... if declared.default is MISSING else declared.default
    if face.parse is not None and default is not ...:
        default = None  # None keeps the field's own default (build_config)
    decls = face.flags or (("--" + declared.name.replace("_", "-"),) if kind is bool else ())
    default_text = face.default_text
    if kind is bool and "/" in (decls or ("",))[0] and default_text is None:  # an on/off pair: not "[default: cnn]"
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


def _without_none(annotation: Any) -> Any:
    """int for `int | None`; anything else as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return inner[0] if len(inner) == 1 else annotation
    return annotation
