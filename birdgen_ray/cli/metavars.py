"""Help that names what an option takes in words (`FILE...`, `SPECIES`, `N`), not Python types
(`<list[Path]>`, `<int range>`): set on every parameter that declares no metavar of its own, when
its command is looked up (for help as for a run)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer.core

_FOLDER_WORDS = ("folder", "directory")


class WordMetavarGroup(typer.core.TyperGroup):
    def get_command(self, ctx, cmd_name: str):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            for param in command.params:
                if param.metavar is None and not getattr(param, "is_flag", False):
                    param.metavar = metavar(param)
                if param.param_type_name == "argument":  # its name says it: no "<str>" after it
                    param.display_type_rich = _no_type
        return command


def metavar(param) -> str:
    """PLAN, OUT, FILE, FOLDER, N, NUMBER, JSON, a|b for choices; "..." after one that repeats."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    many = getattr(param, "multiple", False) or param.nargs != 1 or getattr(descriptor, "is_list", False)
    element = _element(annotation)
    help_text = (getattr(param, "help", None) or "").lower()
    if isinstance(element, type) and issubclass(element, Enum):
        word = "|".join(str(member.value) for member in element)
    elif element is Path:
        word = "FOLDER" if any(w in help_text.split(".")[0] for w in _FOLDER_WORDS) else "FILE"
    elif element is int:
        word = "N"
    elif element is float:
        word = "SECONDS" if (param.name or "").endswith("_s") else "NUMBER"
    elif "as json" in help_text:
        word = "JSON"
    else:
        word = (param.name or "value").upper()
        word = word[:-1] if many and word.endswith("S") else word
    arguments_say_it = param.param_type_name == "argument"  # usage already adds "..." to a repeated one
    return f"{word}..." if many and not arguments_say_it else word


def _no_type(ctx=None) -> None:
    return None


def _element(annotation):
    """int for Optional[int], Path for List[Path], the Enum for a choice."""
    from typing import Union, get_args, get_origin

    origin = get_origin(annotation)
    if origin in (list, tuple, Union) or str(origin) == "types.UnionType":
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _element(inner[0]) if inner else annotation
    return annotation
