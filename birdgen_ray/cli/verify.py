"""`birdgen-ray verify`: BirdNET on any recording (--audio), or on every committed clip of OUT (verify/existing.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from birdgen_ray.cli.options import fail, line_console, storage_options_option, writing_to

console = line_console()
err = line_console(stderr=True)


def verify_cmd(
    out: Optional[str] = typer.Argument(
        None, help="Output folder or s3:// URI to verify: one sidecar per committed shard."
    ),
    audio: List[Path] = typer.Option([], "--audio", help="A recording to check instead (any format; repeatable)."),
    species: Optional[str] = typer.Option(
        None, "--species", help='With --audio: the species expected, "Scientific name" or a whole BirdNET label.'
    ),
    species_map: Optional[Path] = typer.Option(
        None, "--species-map", help="CSV label,birdnet_label that overrides or fills in scientific-name matches."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    threads: int = typer.Option(1, min=1, help="BirdNET threads per task (each task asks Ray for as many CPUs)."),
    batch_size: int = typer.Option(4, min=1, help="3 s windows per BirdNET call."),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto', ray://...); default: a local Ray."),
    storage_options: Optional[str] = storage_options_option(),
    break_lock: bool = typer.Option(False, help="Take over the lease of a run that still looks alive."),
) -> None:
    """Check clips with BirdNET v2.4 (model licence: CC BY-NC-SA 4.0; needs birdgen-ray[birdnet]).

    Examples:

      birdgen-ray verify --audio field.ogg --species "Hylocichla mustelina"

      birdgen-ray verify out/
    """
    from birdgen_ray.verify.birdnet import MissingExtra

    if bool(audio) == bool(out):
        raise fail("give either OUT or --audio FILE..., not both or neither")
    try:
        if audio:
            _verify_recordings(audio, species, species_map, as_json, threads, batch_size)
        else:
            _verify_output(out, species_map, as_json, threads, batch_size, address, storage_options, break_lock)
    except MissingExtra as exc:
        raise fail(str(exc)) from None


def _verify_recordings(
    paths: list[Path], species: str | None, species_map: Path | None, as_json: bool, threads: int, batch_size: int
) -> None:
    from birdgen_ray.io.audio import AudioReadError, read_audio
    from birdgen_ray.verify.birdnet import load_birdnet
    from birdgen_ray.verify.score import score_clips, verifier_id, window_rows
    from birdgen_ray.verify.species import MappingError, resolve_species

    model = load_birdnet(threads)
    target = None
    if species:
        try:  # the same matching as a plan's class: exact scientific name, or a whole label
            found = resolve_species({species: None}, model.labels, {species: species}, "--species")
        except MappingError:
            raise fail(f"--species {species!r} is not a BirdNET v2.4 label (give its scientific name)") from None
        target = found.target(species)
    results = []
    for path in paths:
        try:
            samples, rate = read_audio(path)
        except AudioReadError as exc:
            raise fail(str(exc)) from None
        score = score_clips(model, [samples], rate, [target], batch_size)[0]
        results.append(
            {
                "file": str(path),
                "species": model.labels[target] if target is not None else None,
                "species_confidence": None if target is None else round(score.species_confidence, 4),
                "species_top1": score.species_top1,
                "species_top1_confidence": round(score.species_top1_confidence, 4),
                "verifier": verifier_id(model),
                "windows": window_rows(model, score, target),
            }
        )
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return
    for result in results:
        _print_table(result)


def _print_table(result: dict) -> None:
    from rich.table import Table

    from birdgen_ray.verify.species import display_label

    title = f"{result['file']} ({result['verifier']})"
    table = Table(title=title, title_justify="left")
    for column in ("window", "start_s", "end_s", "target", "top1", "top1_conf"):
        table.add_column(column, justify="left" if column == "top1" else "right", no_wrap=True)
    for row in result["windows"]:
        target = "-" if row["species_confidence"] is None else f"{row['species_confidence']:.3f}"
        table.add_row(
            str(row["window"]),
            f"{row['start_s']:.1f}",
            f"{row['end_s']:.1f}",
            target,
            display_label(row["top1"]),
            f"{row['top1_confidence']:.3f}",
        )
    console.print(table)
    if result["species"]:
        console.print(
            f"{display_label(result['species'])}: {result['species_confidence']:.3f} (max over windows)",
            highlight=False,
        )
    console.print(
        f"top-1: {display_label(result['species_top1'])} {result['species_top1_confidence']:.3f}; "
        "BirdNET v2.4 model licence: CC BY-NC-SA 4.0",
        highlight=False,
    )


def _verify_output(out, species_map, as_json, threads, batch_size, address, storage_options, break_lock) -> None:
    from birdgen_ray.index.reader import as_output
    from birdgen_ray.io.layout import committed_shard_ids
    from birdgen_ray.schedule.lease import OutputLease, OutputLocked
    from birdgen_ray.verify.birdnet import birdnet_labels
    from birdgen_ray.verify.existing import VerifyOutputConfig, verify_output
    from birdgen_ray.verify.species import MappingError, read_mapping, resolve_species

    output = as_output(out, storage_options)
    if not committed_shard_ids(output):
        raise fail(f"{out}: no committed shards to verify")
    try:
        mapping = read_mapping(species_map) if species_map else {}
        resolve_species({}, birdnet_labels(), mapping, str(species_map))  # a typo is named before any work
    except MappingError as exc:
        raise fail(str(exc)) from None
    config = VerifyOutputConfig(
        out=out,
        storage_options=storage_options or {},
        species_map=mapping,
        batch_size=batch_size,
        threads_per_task=threads,
        address=address,
    )
    try:
        with writing_to(out), OutputLease(output, break_lock):
            summary = verify_output(config)
    except OutputLocked as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return
    err.print(
        f"verified {summary['verified']} shards ({summary['clips']} clips); "
        f"{summary['already_verified']} of {summary['shards']} had a sidecar already",
        highlight=False,
    )
    if summary["unverifiable"]:
        names = ", ".join(summary["unverifiable"][:10])
        err.print(f"  unverifiable (no BirdNET label; map them with --species-map): {names}", highlight=False)
