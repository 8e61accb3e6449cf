"""Option parsing shared by the commands: storage options as JSON, local-only paths, NAME=VALUE pairs, lists."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Optional

import typer

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")  # also matches what pathlib makes of "s3://..."


def parse_storage_options(text: Optional[str]) -> dict:
    """`--storage-options` JSON -> dict for fsspec; a clear error for anything else."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f'must be a JSON object such as {{"endpoint_url": "http://..."}}, got {text!r}')
    return value


def split_values(values: Iterable[str] | None) -> tuple[str, ...]:
    """'--label a,b --label c' -> ('a', 'b', 'c'): a list option taken repeated or comma-separated (validate_plan refuses labels with commas)."""
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


def parse_env_pairs(pairs: Iterable[str], option: str) -> dict[str, str]:
    """`["A=1", "B=x=y"]` -> {"A": "1", "B": "x=y"}; a pair without a name or '=' is a ValueError naming `option`."""
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{option} expects NAME=VALUE, got {pair!r}")
        env[name.strip()] = value
    return env


def local_path(value: Optional[Path]) -> Optional[Path]:
    """A path this command writes with plain file IO: refuse object-storage URIs by name."""
    if value is not None and _URI.match(str(value)):
        raise typer.BadParameter(f"{value} looks like an object-storage URI; this option takes a local path")
    return value


def storage_options_option():
    return typer.Option(
        None,
        "--storage-options",
        help='fsspec options for s3:// and other URIs, as JSON, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\'.',
        callback=parse_storage_options,
    )
