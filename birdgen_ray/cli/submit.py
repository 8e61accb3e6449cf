"""`birdgen-ray submit`: the CLI face of the runner. Its options are RunConfig's declared fields
(config.py), built into a command by cli/config_command.py; only --verbose and --dry-run are its own."""

from __future__ import annotations

import logging
import os
import signal

import typer

from birdgen_ray.cli.config_command import config_command, extra_option
from birdgen_ray.cli.options import fail, line_console, writing_to
from birdgen_ray.config import RunConfig
from birdgen_ray.io.errors import storage_error
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.schedule.drive import ActorStartFailed, PlacementTimeout  # at the top: loaded with Ctrl-C held
from birdgen_ray.schedule.lease import OutputLocked
from birdgen_ray.schedule.resume import SettingsMismatch
from birdgen_ray.schedule.runner import Stopped
from birdgen_ray.schedule.runner import submit as submit_run
from birdgen_ray.verify.birdnet import MissingExtra

err = line_console(stderr=True)
SHOW_FAILED = 10  # failed shards listed at the end of a run; `status` lists them all
REFUSALS = (PlanError, OutputLocked, SettingsMismatch, ActorStartFailed, PlacementTimeout, MissingExtra, ValueError)


def submit(run: RunConfig, verbose: bool, dry_run: bool) -> None:
    """Generate every clip of PLAN into OUT: shards of WAVs plus a Parquet index.

    Safe to rerun: committed clips are skipped, a changed plan adds only its new clips, and a run
    killed at any point resumes where it stopped.

    Examples:

    \b
      birdgen-ray submit plan.parquet --out out/ --model tiny
      birdgen-ray submit plan.parquet --out s3://bucket/birds \\
          --address auto --batch-size 64
    """
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if dry_run:
        _print_dry_run(run)
        return
    summary = _run(run)
    _print_summary(summary, run.out)
    if summary["status"] != "complete":
        _print_failed_shards(summary, run.out)
        raise typer.Exit(1)


submit_cmd = config_command(
    RunConfig,
    submit,
    extras=[
        extra_option("verbose", bool, typer.Option(False, "--verbose", "-v", help="Log each step.")),
        extra_option(
            "dry_run",
            bool,
            typer.Option(
                False,
                "--dry-run",
                help="Validate the plan and print what would run (clips, shards, actors, estimated GPU time); "
                "write nothing and start no Ray.",
            ),
        ),
    ],
)


def _print_dry_run(run: RunConfig) -> None:
    from birdgen_ray.cli.dry_run import dry_run_lines

    try:
        for line in dry_run_lines(run):
            err.print(line, highlight=False)
    except REFUSALS as exc:
        raise fail(str(exc)) from None


def _run(run: RunConfig) -> dict:
    """The runner's summary; every way it can stop short becomes one line and its exit code."""
    try:
        with writing_to(run.out):
            return submit_run(run)
    except REFUSALS as exc:
        raise fail(str(exc)) from None
    except Stopped as exc:  # `ray job stop`, a pod being terminated
        err.print(
            f"{exc}: committed shards are kept and the lease is released; run the same command to resume.",
            highlight=False,
        )
        raise typer.Exit(128 + signal.SIGTERM) from None
    except KeyboardInterrupt:  # Ctrl-C: the runner has released the lock on its way out
        committed = _committed(run.out, run.storage_options)
        err.print(f"interrupted: {committed}; run the same command to resume.", highlight=False)
        raise typer.Exit(128 + signal.SIGINT) from None
    except typer.Exit:  # already one line (writing_to's)
        raise
    except Exception as exc:  # a storage error (full disk, unreachable store, ...): one line, exit 2
        message = storage_error(exc, run.out)
        if message is None:
            raise
        # the other shards' tasks met the same error: said in this one line, not again by Ray at exit
        os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
        raise fail(message) from None


def _print_summary(summary: dict, out: str) -> None:
    err.print(
        f"{summary['status']}: {summary['done']}/{summary['planned']} clips in {out} "
        f"({summary['generated_this_run']} new, {summary['failed_clips']} failed, "
        f"{summary['clips_per_second']} clips/s); summary: {out.rstrip('/')}/summary.json",
        highlight=False,
    )
    if summary.get("gate_failed"):
        err.print(
            f"  {summary['gate_failed']} clips failed the quality gate after every retry: "
            "kept with a fail:... verdict, "
            "left out by export and the loaders unless asked for (--include-failed)",
            highlight=False,
        )
    if summary.get("unverifiable_classes"):
        names = ", ".join(summary["unverifiable_classes"][:10])
        err.print(
            f"  {len(summary['unverifiable_classes'])} classes have no BirdNET label and are unverifiable: {names} "
            "(map them with --species-map)",
            highlight=False,
        )


def _print_failed_shards(summary: dict, out: str) -> None:
    failed = list(summary["failed_shards"].items())
    for shard, error in failed[:SHOW_FAILED]:
        err.print(f"  failed {shard}: {error}", highlight=False)
    if len(failed) > SHOW_FAILED:
        err.print(
            f"  ... and {len(failed) - SHOW_FAILED} more failed shards: birdgen-ray status {out}", highlight=False
        )


def _committed(out: str, storage_options: dict) -> str:
    """'N/M clips are committed and kept', read from the output (best effort: it may not exist yet)."""
    from birdgen_ray.index.reader import as_output
    from birdgen_ray.index.status import output_status

    try:
        st = output_status(as_output(out, storage_options))
    except Exception:  # nothing written yet, or storage unreachable: the message must still come out
        return "committed clips are kept"
    return f"{st['done']}/{st['planned']} clips are committed and kept"
