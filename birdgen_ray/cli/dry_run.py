"""`birdgen-ray submit --dry-run`: validate and say what would run, writing nothing and starting no Ray.

The plan is read and validated as a real submit reads it; an existing output is only read (its
committed clips are left out of the count). Actors are sized as a local run sizes them, from this
machine's GPUs and CPUs; against a cluster (`--address`) the count is the cluster's to decide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from birdgen_ray.config import TINY_MODEL, RunConfig
from birdgen_ray.generate.revision import model_revision
from birdgen_ray.index.reader import committed_index
from birdgen_ray.io.recordings import reference_uri
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.estimate import REFERENCE_CARD, estimate_gpu_time
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.schedule.resume import check_resumable, check_scheduler, check_unchanged
from birdgen_ray.schedule.shards import make_shards, pending_rows
from birdgen_ray.schedule.sizing import size_actor_pool
from birdgen_ray.versions import audio_versions


def dry_run_lines(run: RunConfig) -> list[str]:
    """What `submit` would do, as lines to print; raises PlanError for a plan submit would refuse."""
    plan = read_plan(run.plan_path, run.storage_options, run.allow_extra_columns)
    check_scheduler(plan, run.generation, run.plan_path)
    output = Output(run.out, run.storage_options)
    _check_writable(output)
    _check_model(run)
    _check_species(run, plan)
    _check_references(plan, run.storage_options)
    exists = output.fs.exists(output.root)
    if exists:  # the settings and versions a resume must keep
        versions = audio_versions(model_revision(run.generation.model))
        check_resumable(output, run.generation, run.generator, versions, run.allow_version_change)
    committed = committed_index(output) if exists else None
    check_unchanged(plan, committed, run.plan_path, output.uri)
    pending = pending_rows(plan, None if committed is None else committed["clip_id"])
    shards = len(make_shards(pending, run.shard_size)) if pending.num_rows else 0
    lines = [
        f"dry run: the plan {run.plan_path} is valid: {plan.num_rows} clips, "
        f"{plan.num_rows - pending.num_rows} already committed in {run.out}",
        f"would generate {pending.num_rows} clips in {shards} shard{'s' if shards != 1 else ''} "
        f"of up to {run.shard_size}",
    ]
    if run.address or os.environ.get("RAY_ADDRESS"):
        actors = run.num_actors
        lines.append(
            f"actors: {actors} (--num-actors)"
            if actors
            else "actors: one per GPU of the cluster, decided when it starts"
        )
        gpus = actors or 1
    else:
        sizing = size_actor_pool(run, float(_local_gpus()), float(os.cpu_count() or 1))
        kind = f"{sizing.gpus_per_actor:g} GPU each" if sizing.gpus_per_actor else "CPU actors"
        lines.append(f"actors: {sizing.count} ({kind}) on a local Ray")
        gpus = sizing.count if sizing.gpus_per_actor else 0
    estimate = estimate_gpu_time(pending["duration_s"].to_pylist(), run.generation)
    settings = f"at {run.generation.num_inference_steps} steps x {run.generation.candidates_per_clip} takes"
    lines.append(estimate.line(max(1, gpus), settings))
    if not gpus:
        lines.append(
            f"  (no GPU here: the {REFERENCE_CARD} estimate does not apply to CPU actors, which are far slower)"
        )
    lines.append("nothing was written and no Ray was started")
    return lines


def _check_writable(output: Output) -> None:
    """The output folder (or the nearest folder above it) is a writable folder; a bucket exists."""
    if not output.is_local:
        bucket = output.root.split("/", 1)[0]
        # not fs.exists: it says False for a bucket it could not ask about. Any other error (no
        # credentials, no network) goes on to the command's one-line storage errors (cli/options.py).
        try:
            output.fs.info(bucket)
        except FileNotFoundError:
            raise ValueError(f"the bucket of {output.uri} does not exist; create it or fix the URI") from None
        return
    folder = Path(output.root)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {output.uri}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {output.uri}: permission denied on {folder}")


def _check_model(run: RunConfig) -> None:
    """What submit's actors load: a snapshot folder must be one (a hub id is read from the hub cache)."""
    model = run.generation.model
    if run.generator != "audioldm2" or model == TINY_MODEL:
        return
    expanded = os.path.expanduser(model)
    looks_like_path = model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "model_index.json")):
            raise ValueError(f"--model: {expanded} has no model_index.json (not a diffusers snapshot)")
    elif looks_like_path or os.path.exists(expanded):
        raise ValueError(f"--model: model directory not found: {expanded}")


def _check_species(run: RunConfig, plan) -> None:
    """A verifying run's BirdNET labels and --species-map resolve as submit resolves them."""
    if not (run.generation.verifier or run.species_map):
        return
    from birdgen_ray.verify.birdnet import MissingExtra, birdnet_labels, require_extra
    from birdgen_ray.verify.species import plan_species, read_mapping

    if run.species_map and not run.generation.verifier:
        read_mapping(run.species_map)  # a wrong file is named even without --verify
        return
    try:
        require_extra()
    except MissingExtra as exc:
        raise ValueError(str(exc)) from None
    plan_species(plan, birdnet_labels(), run.species_map)


def _check_references(plan, storage_options: dict) -> None:
    """Every reference recording of a reference-conditioned plan is there to be read."""
    if "reference" not in plan.column_names:
        return
    import fsspec

    pairs = {
        (root, ref)
        for root, ref in zip(_column(plan, "reference_root"), plan["reference"].to_pylist())
        if ref is not None
    }
    missing = []
    for root, ref in sorted(pairs, key=str):
        uri = reference_uri(root, ref)
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options if "://" in uri else {}))
        if not fs.exists(path):
            missing.append(uri)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ValueError(f"reference recordings not found: {', '.join(missing[:3])}{more}")


def _column(plan, name: str) -> list:
    return plan[name].to_pylist() if name in plan.column_names else [None] * plan.num_rows


def _local_gpus() -> int:
    """NVIDIA GPUs on this machine, from nvidia-smi (no torch or Ray import for a dry run)."""
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))
