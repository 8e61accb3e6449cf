"""What a rerun may do: extend an output only under its settings, and skip a committed clip only if
its plan row is still the same.

Clip ids derived by `make_clip_id` change with the row's content, but a plan may bring its own ids,
and a hand-edited prompt under a kept id would otherwise be skipped as done while the index keeps
the old prompt. Such rows are refused, by row and column, before anything runs.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.config import GenerationConfig
from birdgen_ray.io.layout import RUN_FILE, committed_shard_ids
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.plan.validate import format_rows
from birdgen_ray.versions import describe_changes, version_changes

log = logging.getLogger(__name__)

CONTENT_COLUMNS = ("label", "prompt", "negative_prompt", "seed", "duration_s")
REFERENCE_CONTENT_COLUMNS = ("reference", "reference_start_s", "strength")


def _with_columns(committed: pa.Table, plan: pa.Table, columns: list[str]) -> pa.Table:
    """clip_id and `columns` of the committed index; a column it lacks (made without references) is null."""
    picked = {"clip_id": committed["clip_id"]}
    for name in columns:
        if name in committed.column_names:
            picked[name] = committed[name]
        else:
            picked[name] = pa.nulls(committed.num_rows, plan.schema.field(name).type)
    return pa.table(picked)


def check_unchanged(plan: pa.Table, committed: pa.Table | None, plan_source: str, out_uri: str) -> None:
    """Raise PlanError naming every plan row whose clip_id is committed with other content."""
    if committed is None or committed.num_rows == 0:
        return
    # a reference-conditioned plan also compares what conditions each clip
    columns = [*CONTENT_COLUMNS, *(c for c in REFERENCE_CONTENT_COLUMNS if c in plan.column_names)]
    ours = plan.select(["clip_id", *columns]).append_column("row", pa.array(range(plan.num_rows), pa.int64()))
    theirs = _with_columns(committed, plan, columns).rename_columns(["clip_id", *(f"committed_{c}" for c in columns)])
    both = ours.join(theirs, "clip_id", join_type="inner")
    problems = []
    for column in columns:
        ours_value, theirs_value = both[column], both[f"committed_{column}"]
        both_null = pc.and_(pc.is_null(ours_value), pc.is_null(theirs_value))
        differs = pc.and_(pc.invert(both_null), pc.fill_null(pc.not_equal(ours_value, theirs_value), True))
        rows = sorted(both.filter(differs)["row"].to_pylist())
        if rows:
            problems.append(
                f"column '{column}': differs from the clip already generated under the same clip_id "
                f"in {format_rows(rows)}"
            )
    if problems:
        problems.append(
            f"those clips are committed in {out_uri}; give changed rows new clip_ids (or drop the "
            "clip_id column to derive them from the content), or use a new --out"
        )
        raise PlanError(plan_source, problems)


class SettingsMismatch(RuntimeError):
    pass


class VersionMismatch(SettingsMismatch):
    """The output's clips were made under other package versions or model weights."""


# submit's flag for each GenerationConfig field (and quality.<field>), for messages users can act on
SETTING_FLAGS = {
    "model": "--model",
    "scheduler": "--scheduler",
    "num_inference_steps": "--steps",
    "guidance_scale": "--guidance",
    "candidates_per_clip": "--candidates",
    "output_sample_rate": "--sample-rate",
    "peak_dbfs": "--peak-dbfs",
    "quality.min_clap_score": "--min-clap",
    "quality.max_retries": "--max-retries",
}


def check_settings(
    output: Output,
    generation: GenerationConfig,
    generator: str,
    versions: dict[str, str] | None = None,
    allow_version_change: bool = False,
) -> dict[str, tuple[str, str]]:
    """An output holds one dataset: refuse to extend it with audio made under other settings or versions.

    The settings are those of the first run that committed a clip: a run that failed or was stopped
    before committing anything (a wrong --model, Ctrl-C while loading) does not bind the output.
    Returns the version changes this run was allowed to make ({} when none), for the run history;
    the output then records this run's versions.
    """
    versions = versions or {}
    record = {
        "fingerprint": generation.fingerprint(),
        "generation": generation.to_json(),
        "generator": generator,
        "versions": versions,
    }
    if not output.exists(RUN_FILE):
        output.write_json(RUN_FILE, record)
        return {}
    recorded = output.read_json(RUN_FILE)
    if not committed_shard_ids(output):
        if recorded != record:
            log.info("%s holds no clips yet: taking this run's settings", output.uri)
            output.write_json(RUN_FILE, record)
        return {}
    _check_same_settings(output, recorded, generation, generator)
    return _check_same_versions(output, recorded, versions, allow_version_change)


def _check_same_settings(output: Output, recorded: dict, generation: GenerationConfig, generator: str) -> None:
    same_generator = recorded.get("generator", "audioldm2") == generator
    if same_generator and recorded["fingerprint"] == generation.fingerprint():
        return
    if not same_generator:
        raise SettingsMismatch(
            f"{output.uri} was generated by the {recorded.get('generator', 'audioldm2')!r} generator, "
            f"this run uses {generator!r}. Use a new --out for a new dataset."
        )
    theirs = GenerationConfig.from_json(recorded["generation"])
    diffs = [
        f"{SETTING_FLAGS.get(name, name)}: output has {old!r}, this run {new!r}"
        for name, old, new in _setting_differences(theirs, generation)
    ]
    raise SettingsMismatch(
        f"{output.uri} was generated with other settings ({'; '.join(diffs)}). "
        "Use the same settings to resume, or a new --out for a new dataset."
    )


def _check_same_versions(
    output: Output, recorded: dict, versions: dict[str, str], allow_version_change: bool
) -> dict[str, tuple[str, str]]:
    """Refuse (or, when allowed, record) a resume under other versions of what decides the audio."""
    if "versions" not in recorded:  # made before versions were recorded: nothing to compare with
        output.write_json(RUN_FILE, {**recorded, "versions": versions})
        return {}
    changes = version_changes(recorded["versions"], versions)
    if changes and not allow_version_change:
        raise _version_refusal(output, changes)
    if changes:
        log.warning("--allow-version-change: %s now holds clips made with %s", output.uri, describe_changes(changes))
        output.write_json(RUN_FILE, {**recorded, "versions": {**recorded["versions"], **versions}})
    return changes


def _version_refusal(output: Output, changes: dict[str, tuple[str, str]]) -> VersionMismatch:
    return VersionMismatch(
        f"{output.uri} was generated with {describe_changes(changes)} (recorded -> installed): "
        "resumed clips would not match the ones already there. Install the recorded versions "
        "(pip install -c constraints.txt), use a new --out, or pass --allow-version-change."
    )


def check_resumable(
    output: Output, generation: GenerationConfig, generator: str, versions: dict[str, str], allow_version_change: bool
) -> None:
    """What check_settings would refuse, without writing anything: for `submit --dry-run`."""
    if not output.exists(RUN_FILE) or not committed_shard_ids(output):
        return
    recorded = output.read_json(RUN_FILE)
    _check_same_settings(output, recorded, generation, generator)
    changes = version_changes(recorded.get("versions") or versions, versions)
    if changes and not allow_version_change:
        raise _version_refusal(output, changes)


def _setting_differences(theirs: GenerationConfig, ours: GenerationConfig) -> list[tuple[str, object, object]]:
    """(field, recorded, this run) for each differing setting; quality thresholds one by one."""
    pairs = [(k, getattr(theirs, k), getattr(ours, k)) for k in GenerationConfig.__dataclass_fields__ if k != "quality"]
    pairs += [
        (f"quality.{k}", getattr(theirs.quality, k), getattr(ours.quality, k))
        for k in type(ours.quality).__dataclass_fields__
    ]
    return [(name, old, new) for name, old, new in pairs if old != new]


def check_scheduler(plan: pa.Table, generation: GenerationConfig, plan_path: str) -> None:
    """Refuse --scheduler pndm for a plan with reference rows: PLMS repeats a warm-up timestep, so a
    row started part-way runs its sample against the wrong timestep (generate/renderers/audioldm2.py)."""
    if generation.scheduler != "pndm" or "reference" not in plan.column_names:
        return
    references = sum(1 for reference in plan["reference"].to_pylist() if reference)
    if references:
        raise ValueError(  # a setting that does not fit the plan, not a bad plan: one line
            f"--scheduler pndm cannot start from a reference: {references} rows of {plan_path} have one "
            "(use --scheduler dpm, ddim or unipc)"
        )
