"""`birdgen-ray check OUT`: read every clip back and compare it with its sha256."""

from __future__ import annotations

from typing import Optional

import typer

from birdgen_ray.cli.options import fail, line_console, output_argument, storage_options_option
from birdgen_ray.index.reader import as_output
from birdgen_ray.io.errors import storage_error

console = line_console()


def check_cmd(
    out: str = output_argument(),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto', ray://...); default: a local Ray."),
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Verify every clip of OUT against its sha256, one Ray task per shard.

    Exits 1 naming each damaged shard; the same submit then makes exactly their damaged clips again.
    """
    from birdgen_ray.schedule.check import check_output

    output = as_output(out, storage_options)
    try:
        if output.is_local and not output.fs.isdir(output.root):
            why = "a file, not a folder" if output.fs.exists(output.root) else "no such folder"
            raise FileNotFoundError(f"{out} is not a birdgen-ray output ({why})")
        result = check_output(output, address)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a storage error: one line, exit 2
        message = storage_error(exc, out)
        if message is None:
            raise
        raise fail(message) from None
    for damage in result.damaged:
        console.print(f"damaged {damage.line()}", highlight=False)
    if result.damaged:
        clips = sum(len(d.bad_clip_ids) for d in result.damaged)
        console.print(
            f"{len(result.damaged)} of {result.shards} shards damaged ({clips} clips); "
            "run the same submit to make their clips again",
            highlight=False,
        )
        raise typer.Exit(1)
    console.print(f"{out}: {result.shards} shards intact, every clip matches its sha256", highlight=False)
