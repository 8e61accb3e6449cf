"""`birdgen-ray verify OUT`: score every committed clip of an existing output, as Ray CPU tasks.

One task per shard: it reads the shard's index and tar, scores every clip with BirdNET and writes
`shards/<id>.species.parquet` (species columns + embedding) in one atomic write. A shard whose
sidecar exists is done, so a rerun scores only what is missing and a run killed at any point loses
nothing and writes nothing twice. The caller holds the output's lock (one writer at a time). A task
of a killed run may still finish after its driver died: its write is atomic and the same bytes a
rerun would write, so a shard still ends up with exactly one sidecar, each clip in it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from birdgen_ray.io.audio import decode_wav
from birdgen_ray.io.layout import SUMMARY_FILE, committed_shard_ids, shard_paths, species_path
from birdgen_ray.io.storage import Output


@dataclass(frozen=True)
class VerifyOutputConfig:
    out: str
    storage_options: dict = field(default_factory=dict)
    species_map: dict = field(default_factory=dict)  # label -> BirdNET label (a read mapping file)
    batch_size: int = 4  # windows per BirdNET call
    threads_per_task: int = 1  # LiteRT threads; each task asks Ray for as many CPUs
    address: str | None = None  # Ray address; None: a local Ray (or the one already started)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.threads_per_task < 1:
            raise ValueError("batch_size and threads_per_task must be >= 1")


def shards_to_verify(output: Output) -> tuple[list[str], list[str]]:
    """(committed shards without a sidecar, committed shards that have one)."""
    names = set(output.list("shards"))
    committed = committed_shard_ids(output)
    done = [s for s in committed if species_path(s).split("/", 1)[1] in names]
    return [s for s in committed if s not in set(done)], done


def verify_shard(config: VerifyOutputConfig, shard_id: str) -> dict:
    """Score one committed shard and publish its sidecar; returns counts for the summary."""
    from birdgen_ray.verify.birdnet import birdnet_labels, load_birdnet
    from birdgen_ray.verify.columns import sidecar_table
    from birdgen_ray.verify.score import score_clips, verifier_id
    from birdgen_ray.verify.species import resolve_species

    # 1. the shard's index and audio
    output = Output(config.out, config.storage_options)
    tar_rel, index_rel = shard_paths(shard_id)
    index = output.read_table(index_rel)
    tar = output.read_bytes(tar_rel)
    rows = index.select(
        [c for c in ("clip_id", "label", "scientific_name", "offset", "size") if c in index.column_names]
    )
    rows = rows.to_pylist()
    # 2. each clip's target species
    names = {row["label"]: row.get("scientific_name") for row in rows}
    species = resolve_species(names, birdnet_labels(), config.species_map)
    # 3. BirdNET over every clip's windows
    model = load_birdnet(config.threads_per_task)
    audios, rates = zip(*(decode_wav(tar[r["offset"] : r["offset"] + r["size"]]) for r in rows)) if rows else ((), ())
    targets = [species.target(row["label"]) for row in rows]
    scores = score_clips(model, list(audios), list(rates), targets, config.batch_size)
    # 4. one atomic write: the sidecar exists completely or not at all
    table = sidecar_table([row["clip_id"] for row in rows], scores, verifier_id(model))
    publish_sidecar(output, shard_id, table)
    return {
        "shard_id": shard_id,
        "clips": len(rows),
        "unverifiable": sorted(set(species.unverifiable)),
        "verifier": verifier_id(model),
    }


def publish_sidecar(output: Output, shard_id: str, table) -> None:
    """The shard's sidecar, in one atomic write (the kill tests slow this down: tests/fault_hooks.py)."""
    output.write_table(species_path(shard_id), table)


def verify_output(config: VerifyOutputConfig) -> dict:
    """Score every committed shard that has no sidecar yet; returns a summary."""
    import ray

    # 1. what is left to do
    output = Output(config.out, config.storage_options)
    todo, done = shards_to_verify(output)
    summary = {"shards": len(todo) + len(done), "already_verified": len(done), "verified": 0, "clips": 0}
    # 2. one CPU task per shard, as many CPUs as BirdNET threads
    pending = []
    if todo:
        if not ray.is_initialized():
            ray.init(address=config.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        task = ray.remote(num_cpus=config.threads_per_task, max_retries=2)(verify_shard)
        pending = [task.remote(config, shard_id) for shard_id in todo]
    unverifiable: set[str] = set()
    # 3. collect as they finish (a failed task raises here; finished sidecars stay)
    verifier = _recorded_verifier(output, done)
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        result = ray.get(finished[0])
        summary["verified"] += 1
        summary["clips"] += result["clips"]
        verifier = result["verifier"]
        unverifiable.update(result["unverifiable"])
    summary = {**summary, "unverifiable": sorted(unverifiable)}
    # 4. the output's summary says which verifier scored it, under which licence
    if output.exists(SUMMARY_FILE):
        from birdgen_ray.verify.birdnet import LICENCE

        record = output.read_json(SUMMARY_FILE)
        record["species_verification"] = {**summary, "verifier": verifier, "verifier_licence": LICENCE}
        output.write_json(SUMMARY_FILE, record)
    return summary


def _recorded_verifier(output: Output, done: list[str]) -> str:
    """The verifier named in an existing sidecar ("" when there is none yet)."""
    if not done:
        return ""
    verifiers = output.read_table(species_path(done[0])).column("verifier").to_pylist()
    return verifiers[0] if verifiers else ""
