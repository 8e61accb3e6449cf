"""Shared by the commands: the options of commands that have no config (storage options as JSON,
local-only paths, OUT, fixed choices; the parsing itself is fields.py's) and how an error reaches the
user (one `error:` line, never a traceback)."""

from __future__ import annotations

import functools
import math
import os
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterable, Iterator, Optional

import click
import typer
from rich.console import Console
from rich.markup import escape

from birdgen_ray import fields
from birdgen_ray.fields import STORAGE_OPTIONS_HELP, is_uri, parse_json_object


def parse_storage_options(text: Optional[str]) -> dict:
    """`--storage-options` JSON -> dict for fsspec; anything else is one `error:` line, exit 2."""
    try:
        return parse_json_object(text, "--storage-options") if text else {}
    except ValueError as exc:
        raise fail(str(exc)) from None


def local_path(param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """Option callback: a path this command writes with plain file IO, never an object-storage URI
    (one `error:` line naming the option, as the configs' `fields.local_path` says it)."""
    try:
        flag = next((name for name in param.opts if name.startswith("--")), (param.name or "").upper())
        return None if value is None else fields.local_path(value, flag)
    except ValueError as exc:
        raise fail(str(exc)) from None


def output_argument():
    """OUT, the output of a submit that a command reads."""
    return typer.Argument(..., help="Output folder or s3:// URI of a submit.")


def storage_options_option():
    return typer.Option(None, "--storage-options", help=STORAGE_OPTIONS_HELP, callback=parse_storage_options)


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A str Enum of `values` for a typer option: --help lists them and any other value fails at parsing."""
    return Enum(name, [(value, value) for value in values], type=str)


def finite(value: Optional[float]) -> Optional[float]:
    """Option callback: refuse nan/inf, which pass typer's min=/max= range checks."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def line_console(stderr: bool = False) -> Console:
    """A rich Console whose lines are never wrapped: paths stay whole when output goes to a file or pipe."""
    return Console(stderr=stderr, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` on stderr as one unwrapped line; `raise fail(...)` ends the command with `code`."""
    line_console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def one_line_errors(command):
    """A command whose unexpected OSError (a file where a folder is wanted, a path that cannot be
    read, a full disk, a corrupt file) ends in one `error:` line naming the path, exit 2."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except OSError as exc:
            raise fail(describe_os_error(exc)) from None
        except (typer.Exit, click.ClickException):  # already said (its cause may be a storage error too)
            raise
        except Exception as exc:  # botocore's own errors (no credentials, ...) are no OSError
            from birdgen_ray.io.errors import storage_error

            message = storage_error(exc, str(kwargs.get("out") or "the object store"))
            if message is None:
                raise
            raise fail(message) from None

    return run


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the storage rules first (io/errors.py), then the path and why."""
    from birdgen_ray.io.errors import storage_error

    where = exc.filename or "the path"
    message = storage_error(exc, str(where))
    if message is not None:
        return message
    if exc.filename is None:
        return str(exc) or type(exc).__name__
    failed = Path(os.path.abspath(exc.filename))
    if isinstance(exc, NotADirectoryError):
        blocker = next((p for p in (failed, *failed.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    return f"cannot read {exc.filename}: {exc.strerror or type(exc).__name__}"


@contextmanager
def writing_to(dest: str | os.PathLike, within: str | os.PathLike | None = None) -> Iterator[None]:
    """Inside, an OSError about the folder `within` (default: `dest`), a file in it, or a folder above it
    ends the command with `error: cannot write DEST: reason` (exit 2) instead of a traceback.

    Errors about other paths (the input being read) go on unchanged; so does anything on object storage.
    """
    try:
        yield
    except OSError as exc:
        if not _about(exc, Path(within if within is not None else dest)):
            raise
        raise fail(f"cannot write {dest}: {_why_unwritable(exc, Path(dest))}") from None


def _about(exc: OSError, folder: Path) -> bool:
    """Whether the error names `folder`, something inside it, or a folder above it (a failed mkdir -p)."""
    if is_uri(folder) or exc.filename is None:
        return False
    failed, folder = Path(os.path.abspath(exc.filename)), Path(os.path.abspath(folder))
    return failed == folder or folder in failed.parents or failed in folder.parents


def _why_unwritable(exc: OSError, dest: Path) -> str:
    failed = Path(os.path.abspath(exc.filename))
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        blocker = next((p for p in (failed, *failed.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"{blocker} is a file, not a folder"
    reason = exc.strerror or type(exc).__name__
    if failed in Path(os.path.abspath(dest)).parents:
        return f"cannot create folder {failed}: {reason}"
    return reason
