"""`birdgen-ray status` and `birdgen-ray extract`: read an output without running anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import pyarrow as pa
import pyarrow.compute as pc
import typer

from birdgen_ray.cli.options import fail, line_console, local_path, output_argument, storage_options_option, writing_to
from birdgen_ray.index.reader import as_output, open_index, read_clip_bytes
from birdgen_ray.index.status import output_status
from birdgen_ray.io.errors import CorruptFile, storage_error

console = line_console()


def status_cmd(
    out: str = output_argument(),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Planned / done / failed / pending clips of OUT, read from the output alone."""
    try:
        st = output_status(as_output(out, storage_options))
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a storage error (unreachable store, corrupt file): one line, exit 2
        message = storage_error(exc, out)
        if message is None:
            raise
        raise fail(message) from None
    if as_json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return
    console.print(
        f"{st['out']}: planned {st['planned']}, done {st['done']}, failed {st['failed']}, "
        f"pending {st['pending']} ({st['shards']} shards)",
        highlight=False,
    )
    if st["gate_failed"]:
        console.print(
            f"  {st['gate_failed']} of the done clips failed the quality gate after every retry (verdict fail:...); "
            "export leaves them out unless given --include-failed",
            highlight=False,
        )
    if st["not_in_plan"]:
        earlier_failing = st["gate_failed_in_output"] - st["gate_failed"]
        console.print(
            f"  the output also holds {st['not_in_plan']} clips from earlier plans "
            "(in index.parquet, export and report)"
            + (f", {earlier_failing} of them failed the quality gate" if earlier_failing else ""),
            highlight=False,
        )
    for f in st["failures"]:
        console.print(f"  failed shard {f['shard_id']} ({f['clips']} clips): {f['error']}", highlight=False)
    for line in st["damaged"]:
        console.print(f"  damaged {line}; run the same submit to make its clips again", highlight=False)
    if st["run"]:
        console.print(f"  {st['run']}", highlight=False)
    if st["running"]:
        r = st["running"]
        console.print(
            f"  lease held by run {r.get('run_id')} on {r.get('host')} pid {r.get('pid')} since {r.get('started_at')}",
            highlight=False,
        )
    if st["last_run"]:
        lr = st["last_run"]
        console.print(
            f"  last run that generated clips: {lr.get('status')}, {lr.get('generated_this_run', 0)} clips at "
            f"{lr.get('clips_per_second')} clips/s, finished {lr.get('finished_at')}",
            highlight=False,
        )


def extract_cmd(
    out: str = output_argument(),
    clip_ids: List[str] = typer.Argument(..., help="One or more clip ids from the index."),
    dest: Path = typer.Option(
        Path("."), "--dest", "-d", callback=local_path, help="Folder to write <clip_id>.wav files into."
    ),
    storage_options: Optional[str] = storage_options_option(),
) -> None:
    """Copy clips out of their shards as plain WAV files.

    Example: birdgen-ray extract out/ asbfly-1a2b3c4d5e6f7a8b --dest clips/
    """
    output = as_output(out, storage_options)
    try:
        index = open_index(output)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    rows = {row["clip_id"]: row for row in index.filter(pc.is_in(index["clip_id"], pa.array(clip_ids))).to_pylist()}
    missing = [clip_id for clip_id in clip_ids if clip_id not in rows]
    if missing:
        raise fail(f"not in the index of {output.uri}: {', '.join(missing)}")
    with writing_to(dest):
        dest.mkdir(parents=True, exist_ok=True)
        for clip_id in clip_ids:
            row = rows[clip_id]
            target = dest / f"{clip_id}.wav"
            try:
                data = read_clip_bytes(output, row)
            except CorruptFile as exc:
                raise fail(str(exc)) from None
            target.write_bytes(data)
            console.print(
                f"{target}  ({row['label']}, {row['duration_s']} s, {row['sample_rate']} Hz)", highlight=False
            )
