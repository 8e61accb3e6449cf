"""How big the actor pool is: how many generator actors, with how many GPUs or CPU threads each."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from birdgen_ray.config import BUILTIN_MODELS, RunConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActorSizing:
    count: int
    gpus_per_actor: float  # 0: CPU actors
    cpu_threads: int | None  # torch threads per CPU actor
    explicit_gpus: bool  # asked for with gpus_per_actor > 0: wait for the autoscaler to place them


def size_actor_pool(run: RunConfig, gpus: float, cpus: float) -> ActorSizing:
    """How many actors, with how many GPUs each, given what the cluster holds now.

    Auto (gpus_per_actor None): one GPU each where the cluster has GPUs, else CPU actors, never
    more than fit now. An explicit gpus_per_actor > 0 always asks for GPU actors, `num_actors` of
    them (default: as many as fit now, at least one): those that do not fit make an autoscaler add
    GPU nodes. 0: CPU actors.
    """
    per_actor = run.gpus_per_actor
    explicit = per_actor is not None and per_actor > 0
    if per_actor is None:
        per_actor = 1.0 if gpus >= 1.0 else 0.0
        if not per_actor:
            _cpu_fallback(run)
    if per_actor > 0:
        fits = int(gpus // per_actor)
        if not explicit:
            return ActorSizing(_fitting(run.num_actors or fits, fits, "GPU"), per_actor, None, False)
        count = run.num_actors or max(1, fits)
        if count > fits:
            log.warning(
                "%d GPU actors asked for, %d fit on the cluster now: the others wait for GPU nodes", count, fits
            )
        return ActorSizing(count, per_actor, None, True)
    count = _fitting(run.num_actors or max(1, int(cpus // 2)), max(1, int(cpus)), "CPU")
    return ActorSizing(count, 0.0, max(1, int(cpus // count)), False)


def _cpu_fallback(run: RunConfig) -> None:
    """Auto sizing found no GPU: never drop to the CPU silently. On a cluster that was joined (where
    GPUs are the point) refuse unless --allow-cpu; on a local Ray, warn. The null generator and the
    tiny test model need none."""
    if run.generator == "null" or run.generation.model in BUILTIN_MODELS or run.allow_cpu:
        return
    if run.address or os.environ.get("RAY_ADDRESS"):
        raise ValueError(
            "the Ray cluster has no GPU now: pass --gpus-per-actor 1 to wait for GPU nodes, "
            "or --allow-cpu to generate on CPU actors (far slower)"
        )
    log.warning("no GPU on this machine: generating on CPU actors (far slower); --gpus-per-actor 1 waits for a GPU")


def _fitting(wanted: int, fits: int, resource: str) -> int:
    """Unasked-for actors the cluster cannot place would only ever wait: cap them instead."""
    if wanted > fits:
        log.warning("%d actors asked for, but the cluster's %ss hold %d now: starting %d", wanted, resource, fits, fits)
        return fits
    return wanted


def waiting_line(waiting: int, running: int, sizing: ActorSizing, autoscaler: bool, timeout_s: float = 0.0) -> str:
    """What the driver waits for: actors not placed yet (no room, or an autoscaler adding nodes) or loading."""
    import ray

    resources = ray.cluster_resources()
    kind = "GPU" if sizing.gpus_per_actor else "CPU"
    line = (
        f"waiting for {waiting} {kind} actor{'s' if waiting != 1 else ''} to be placed and load the generator "
        f"({running} running; the cluster has {resources.get('GPU', 0.0):g} GPUs, "
        f"{resources.get('CPU', 0.0):g} CPUs now)"
    )
    if sizing.explicit_gpus and autoscaler:
        line += "; the autoscaler adds GPU nodes for them"
    elif sizing.explicit_gpus:
        line += "; this cluster has no autoscaler: they start only once GPU nodes join it"
    if timeout_s:
        line += f"; the run stops if none can start within --placement-timeout-s {timeout_s:g}"
    return line + "..."
