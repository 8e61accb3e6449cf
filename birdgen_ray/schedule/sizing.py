"""How big the actor pool is: how many generator actors, with how many GPUs or CPU threads each."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from birdgen_ray.config import RunConfig

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


def _fitting(wanted: int, fits: int, resource: str) -> int:
    """Unasked-for actors the cluster cannot place would only ever wait: cap them instead."""
    if wanted > fits:
        log.warning("%d actors asked for, but the cluster's %ss hold %d now: starting %d", wanted, resource, fits, fits)
        return fits
    return wanted


def waiting_line(waiting: int, running: int, sizing: ActorSizing) -> str:
    """What the driver waits for: actors not placed yet (no room, or an autoscaler adding nodes) or loading."""
    import ray

    resources = ray.cluster_resources()
    kind = "GPU" if sizing.gpus_per_actor else "CPU"
    line = (
        f"waiting for {waiting} {kind} actor{'s' if waiting != 1 else ''} to be placed and load the generator "
        f"({running} running; the cluster has {resources.get('GPU', 0.0):g} GPUs, "
        f"{resources.get('CPU', 0.0):g} CPUs now)"
    )
    if sizing.explicit_gpus:
        line += "; an autoscaler adds GPU nodes for them"
    return line + "..."
