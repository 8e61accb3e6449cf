"""Ray start-up: join the cluster a job runs in, or start a local one."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from birdgen_ray.config import RunConfig
from birdgen_ray.schedule.interrupts import sigint_held


def init_ray(run: RunConfig) -> None:
    with sigint_held("Ray's start-up"):  # an interrupt inside ray.init can crash the interpreter
        _init_ray(run)


def _init_ray(run: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    sigterm = signal.getsignal(signal.SIGTERM)
    if run.address or os.environ.get("RAY_ADDRESS"):
        # Inside a Ray job or against a running cluster: join it, never pass resources.
        # WARNING: Ray's "Connecting to existing Ray cluster" INFO lines are not the command's output
        ray.init(address=run.address or None, log_to_driver=False, logging_level=logging.WARNING)
    else:
        note = _local_token_auth()
        if note:
            from ray._raylet import Config

            Config.initialize("")  # Ray caches its config at import: let it see the mode (as Ray itself does)
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if note:
            sys.stderr.write(note + "\n")
    if sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, sigterm)  # ray.init puts its own sys.exit there: keep the caller's


def has_autoscaler() -> bool:
    """Whether an autoscaler can add nodes to the cluster this driver joined (best effort).

    An autoscaler (KubeRay's, `ray up`'s) reports the cluster's node types to the GCS: autoscaler v2
    as the cluster config, v1 in its status report, which maps live nodes to configured node-type
    names. A plain `ray start` or a local Ray runs a monitor too, but it reports no config and maps
    each node to itself (`node_<id>`).
    """
    import json

    import ray._private.state as ray_state
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        if ray_state.state.get_cluster_config():
            return True
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
        report = json.loads(raw).get("autoscaler_report", {}) if raw else {}
    except Exception:  # noqa: BLE001 - private APIs: if they moved, say nothing about an autoscaler
        return False
    mapping = report.get("node_type_mapping") or {}
    return any(kind not in (node, f"node_{node}") for node, kind in mapping.items())


def _local_token_auth() -> str | None:
    """Token auth for the local Ray this run starts, stated in one line instead of Ray's notice.

    Ray's servers listen on all interfaces (gcs_server, raylet and workers bind `*:port` even with
    the node IP set to 127.0.0.1), so the token is what keeps anyone on the network from running
    code on this machine. Ray 2.59+ turns it on for local clusters and says so in a notice that
    suggests turning it off; setting the mode explicitly keeps it on without the notice. Ray writes
    a token to ~/.ray/auth_token when there is none. A RAY_AUTH_MODE the user set is left alone.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return None
    os.environ["RAY_AUTH_MODE"] = "token"
    where = os.environ.get("RAY_AUTH_TOKEN_PATH") or (
        "RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN") else "~/.ray/auth_token"
    )
    return f"local Ray: token authentication on (its servers listen on all interfaces); token: {where}"
