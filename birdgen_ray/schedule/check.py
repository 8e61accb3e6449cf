"""`birdgen-ray check OUT`: every clip's bytes against its sha256, one Ray task per shard.

A damaged shard is recorded in `_birdgen/damaged/` (write/repair.py), where `status` names it and
the next submit repairs it; a shard found intact again loses any old record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from birdgen_ray.index.integrity import ShardDamage, recorded_damage, verify_shard
from birdgen_ray.io.layout import committed_shard_ids
from birdgen_ray.io.storage import Output
from birdgen_ray.write.repair import clear_damage, record_damage


@dataclass
class CheckResult:
    shards: int = 0
    damaged: list[ShardDamage] = field(default_factory=list)


def _verify(uri: str, storage_options: dict[str, Any], shard_id: str) -> ShardDamage | None:
    return verify_shard(Output(uri, storage_options), shard_id)


def check_output(output: Output, address: str | None = None) -> CheckResult:
    """Verify every committed shard of `output` on Ray (a local one unless `address`); records the damage."""
    import ray

    from birdgen_ray.config import RunConfig
    from birdgen_ray.schedule.cluster import init_ray

    shard_ids = committed_shard_ids(output)
    if not shard_ids:
        return CheckResult()
    init_ray(RunConfig(plan_path="", out=output.uri, address=address))
    task = ray.remote(num_cpus=1)(_verify)
    found = ray.get([task.remote(output.uri, output.storage_options, sid) for sid in shard_ids])
    damaged = [damage for damage in found if damage is not None]
    for damage in damaged:
        record_damage(output, damage)
    still = {damage.shard_id for damage in damaged}
    for old in recorded_damage(output):
        if old.shard_id not in still:
            clear_damage(output, old.shard_id)
    return CheckResult(len(shard_ids), damaged)
