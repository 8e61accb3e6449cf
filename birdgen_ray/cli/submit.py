"""`birdgen-ray submit`: the CLI face of the runner."""

from __future__ import annotations

import logging
import os
import signal
from typing import List, Optional

import typer

from birdgen_ray.cli.options import (
    choices,
    fail,
    finite,
    line_console,
    parse_env_pairs,
    storage_options_option,
    writing_to,
)
from birdgen_ray.config import (
    DEFAULT_MODEL,
    RANK_BY,
    SCHEDULERS,
    VERIFIERS,
    EngineConfig,
    GenerationConfig,
    QualityThresholds,
    RunConfig,
)
from birdgen_ray.io.errors import storage_error
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.schedule.drive import ActorStartFailed, PlacementTimeout  # at the top: loaded with Ctrl-C held
from birdgen_ray.schedule.lease import OutputLocked
from birdgen_ray.schedule.resume import SettingsMismatch
from birdgen_ray.schedule.runner import Stopped, submit
from birdgen_ray.verify.birdnet import MissingExtra
from birdgen_ray.verify.thresholds import parse_species_threshold

err = line_console(stderr=True)
SHOW_FAILED = 10  # failed shards listed at the end of a run; `status` lists them all
Scheduler = choices("Scheduler", SCHEDULERS)
Generator = choices("Generator", ("audioldm2", "null"))  # what schedule/actor.py builds
Verifier = choices("Verifier", VERIFIERS)
RankBy = choices("RankBy", RANK_BY)


def submit_cmd(
    plan: str = typer.Argument(
        ...,
        help="Plan table (Parquet, local path or s3://...): label, prompt, seed, duration_s "
        "[, clip_id, negative_prompt].",
    ),
    out: str = typer.Option(..., "--out", "-o", help="Output folder or object-storage URI (s3://bucket/prefix)."),
    model: str = typer.Option(
        DEFAULT_MODEL,
        help="Hub id or local snapshot folder of AudioLDM2 or Stable Audio Open (the family is read from its "
        "model_index.json), or a built-in random model, offline: 'tiny' (AudioLDM2), 'tiny-stable-audio'.",
    ),
    scheduler: Scheduler = typer.Option("dpm", help="AudioLDM2's sampler (Stable Audio Open keeps its own)."),
    steps: int = typer.Option(25, min=1, help="Denoising steps per clip."),
    guidance: float = typer.Option(3.5, min=0, callback=finite, help="Classifier-free guidance scale (<= 1: off)."),
    candidates: int = typer.Option(
        1,
        min=1,
        help="Takes per clip; the one closest to its own prompt (CLAP) is kept. Without --min-clap, one "
        "take skips CLAP scoring (clap_score null).",
    ),
    sample_rate: int = typer.Option(
        32_000, min=8_000, help="Output rate in Hz (BirdCLEF: 32000; the model's native: 16000)."
    ),
    peak_dbfs: float = typer.Option(-1.0, max=0, callback=finite, help="Peak-normalise every clip to this level."),
    min_clap: Optional[float] = typer.Option(
        None,
        min=-1,
        max=1,
        callback=finite,
        show_default=False,
        help="Quality gate: reject clips whose CLAP score (-1 to 1) is below this [default: off].",
    ),
    max_retries: int = typer.Option(
        2, min=0, help="Regenerations (derived seeds) for a clip the quality gate rejects."
    ),
    verify: Optional[Verifier] = typer.Option(
        None,
        "--verify",
        help="Score every take's species with BirdNET v2.4 on CPU threads beside the model (needs "
        "birdgen-ray[birdnet]; model licence CC BY-NC-SA 4.0) [default: off].",
    ),
    min_species_confidence: Optional[str] = typer.Option(
        None,
        show_default=False,
        help="Quality gate (with --verify): reject takes whose species confidence is below X (0-1), or "
        "below a share of the class's band ceiling (0.5x; plan --references); after the retries such a "
        "clip is kept as fail:species [default: off].",
    ),
    rank_by: RankBy = typer.Option(
        "clap",
        help="With --candidates > 1: keep the take closest to its prompt (clap) "
        "or the one BirdNET hears as its species most confidently (species).",
    ),
    species_map: Optional[str] = typer.Option(
        None, "--species-map", help="CSV label,birdnet_label: overrides or fills in scientific-name matches."
    ),
    drop_species_failures: bool = typer.Option(
        False,
        "--drop-species-failures",
        help="Store no audio for clips still fail:species after the retries (their index row, verdict and "
        "embedding stay; readers, export and the report skip them).",
    ),
    verifier_threads: Optional[int] = typer.Option(
        None, min=1, help="BirdNET threads per actor [default: 6 on a GPU actor, 1 on a CPU actor]."
    ),
    batch_size: Optional[int] = typer.Option(
        None,
        min=1,
        show_default=False,
        help="Clips per model call on one actor [default: auto: from the GPU's free memory and the clip length "
        "(at most 128); 8 on CPU actors].",
    ),
    compile_unet: Optional[bool] = typer.Option(
        None,
        "--compile/--no-compile",
        show_default=False,
        help="torch.compile the UNet once per actor [default: auto: on CUDA when each actor has enough clips "
        "to earn the ~100 s compile back].",
    ),
    shard_size: int = typer.Option(256, min=1, help="Clips per output shard (one tar + one index file)."),
    num_actors: Optional[int] = typer.Option(
        None, min=1, help="Generator actors [default: one per GPU, else one per 2 CPUs]."
    ),
    gpus_per_actor: Optional[float] = typer.Option(
        None,
        min=0,
        callback=finite,
        help="GPUs per actor [default: auto: 1 if the cluster has GPUs now, else CPU actors]. A value > 0 always "
        "asks for GPU actors (as many as --num-actors says; an autoscaler adds GPU nodes while they wait); 0: CPU "
        "actors.",
    ),
    address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto', ray://...); default: a local Ray."),
    generator: Generator = typer.Option("audioldm2", help="audioldm2, or null (no model; deterministic test audio)."),
    storage_options: Optional[str] = storage_options_option(),
    actor_env: List[str] = typer.Option(
        [], "--actor-env", help="NAME=VALUE environment variable for the generator actors (repeatable)."
    ),
    shard_timeout: Optional[float] = typer.Option(
        None,
        min=1,
        callback=finite,
        show_default=False,
        help="Seconds an actor may work without finishing a shard; it is then killed and its oldest shard "
        "retried [default: off].",
    ),
    max_shard_attempts: int = typer.Option(
        3, min=1, help="Tries per shard (a dead actor's shard is retried elsewhere) before it is recorded as failed."
    ),
    break_lock: bool = typer.Option(
        False,
        "--break-lock",
        help="Take over the output's lease even while it is fresh (a dead run's expired lease is taken over "
        "without it). Check the other run is really gone first.",
    ),
    lease_ttl_s: float = typer.Option(
        300.0, min=1, callback=finite, help="Seconds without renewal after which the output's lease expires."
    ),
    lease_renew_s: float = typer.Option(30.0, min=0.1, callback=finite, help="How often the run renews its lease."),
    placement_timeout_s: float = typer.Option(
        1800.0,
        min=0,
        callback=finite,
        help="End the run when no generator actor can be placed and started for this long (0: wait forever).",
    ),
    allow_cpu: bool = typer.Option(
        False, "--allow-cpu", help="On a cluster without GPUs, generate on CPU actors instead of refusing to start."
    ),
    allow_version_change: bool = typer.Option(
        False,
        "--allow-version-change",
        help="Resume OUT although it was made with other versions of torch, diffusers, transformers, "
        "tokenizers, numpy or soxr, or other model weights (the change is recorded in summary.json).",
    ),
    progress: bool = typer.Option(
        True, "--progress/--no-progress", show_default=False, help="Show a live progress bar [default: on]."
    ),
    allow_extra_columns: bool = typer.Option(
        False,
        "--allow-extra-columns",
        help="Carry a plan's columns that a plan does not have into the index (a plan not written by "
        "'birdgen-ray plan'; without it such a column is refused as a possible damaged name).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each step."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Validate the plan and print what would run (clips, shards, actors, estimated GPU time); "
        "write nothing and start no Ray.",
    ),
) -> None:
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
    try:
        species_threshold = parse_species_threshold(min_species_confidence) if min_species_confidence else None
        run = RunConfig(
            plan_path=str(plan),
            out=out,
            storage_options=storage_options,
            generation=GenerationConfig(
                model=model,
                scheduler=scheduler.value,
                num_inference_steps=steps,
                guidance_scale=guidance,
                candidates_per_clip=candidates,
                output_sample_rate=sample_rate,
                peak_dbfs=peak_dbfs,
                quality=QualityThresholds(
                    min_clap_score=min_clap,
                    max_retries=max_retries,
                    min_species_confidence=species_threshold.value if species_threshold else None,
                    species_confidence_relative=bool(species_threshold and species_threshold.relative),
                ),
                verifier=verify.value if verify else None,
                rank_by=rank_by.value,
                drop_species_failures=drop_species_failures,
            ),
            engine=EngineConfig(batch_size=batch_size, compile_unet=compile_unet, verifier_threads=verifier_threads),
            species_map=species_map,
            allow_extra_columns=allow_extra_columns,
            generator=generator.value,
            address=address,
            num_actors=num_actors,
            gpus_per_actor=gpus_per_actor,
            shard_size=shard_size,
            max_shard_attempts=max_shard_attempts,
            shard_timeout_s=shard_timeout,
            actor_env=parse_env_pairs(actor_env, "--actor-env"),
            break_lock=break_lock,
            lease_ttl_s=lease_ttl_s,
            lease_renew_s=lease_renew_s,
            placement_timeout_s=placement_timeout_s,
            allow_cpu=allow_cpu,
            allow_version_change=allow_version_change,
            progress=progress,
        )
        if dry_run:
            from birdgen_ray.cli.dry_run import dry_run_lines

            for line in dry_run_lines(run):
                err.print(line, highlight=False)
            return
        with writing_to(out):
            summary = submit(run)
    except (
        PlanError,
        OutputLocked,
        SettingsMismatch,
        ActorStartFailed,
        PlacementTimeout,
        MissingExtra,
        ValueError,
    ) as exc:
        raise fail(str(exc)) from None
    except Stopped as exc:  # `ray job stop`, a pod being terminated
        err.print(
            f"{exc}: committed shards are kept and the lease is released; run the same command to resume.",
            highlight=False,
        )
        raise typer.Exit(128 + signal.SIGTERM) from None
    except KeyboardInterrupt:  # Ctrl-C: the runner has released the lock on its way out
        err.print(f"interrupted: {_committed(out, storage_options)}; run the same command to resume.", highlight=False)
        raise typer.Exit(128 + signal.SIGINT) from None
    except typer.Exit:  # already one line (writing_to's)
        raise
    except Exception as exc:  # a storage error (full disk, unreachable store, ...): one line, exit 2
        message = storage_error(exc, out)
        if message is None:
            raise
        # the other shards' tasks met the same error: said in this one line, not again by Ray at exit
        os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] = "1"
        raise fail(message) from None
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
    if summary["status"] != "complete":
        failed = list(summary["failed_shards"].items())
        for shard, error in failed[:SHOW_FAILED]:
            err.print(f"  failed {shard}: {error}", highlight=False)
        if len(failed) > SHOW_FAILED:
            err.print(
                f"  ... and {len(failed) - SHOW_FAILED} more failed shards: birdgen-ray status {out}", highlight=False
            )
        raise typer.Exit(1)


def _committed(out: str, storage_options: dict) -> str:
    """'N/M clips are committed and kept', read from the output (best effort: it may not exist yet)."""
    from birdgen_ray.index.reader import as_output
    from birdgen_ray.index.status import output_status

    try:
        st = output_status(as_output(out, storage_options))
    except Exception:  # nothing written yet, or storage unreachable: the message must still come out
        return "committed clips are kept"
    return f"{st['done']}/{st['planned']} clips are committed and kept"
