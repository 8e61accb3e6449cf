"""What a rerun may skip: a committed clip counts as done only if its plan row is still the same.

Clip ids derived by `make_clip_id` change with the row's content, but a plan may bring its own ids,
and a hand-edited prompt under a kept id would otherwise be skipped as done while the index keeps
the old prompt. Such rows are refused, by row and column, before anything runs.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.plan.schema import PlanError, format_rows

CONTENT_COLUMNS = ("label", "prompt", "negative_prompt", "seed", "duration_s")


def check_unchanged(plan: pa.Table, committed: pa.Table | None, plan_source: str, out_uri: str) -> None:
    """Raise PlanError naming every plan row whose clip_id is committed with other content."""
    if committed is None or committed.num_rows == 0:
        return
    ours = plan.select(["clip_id", *CONTENT_COLUMNS]).append_column("row", pa.array(range(plan.num_rows), pa.int64()))
    theirs = committed.select(["clip_id", *CONTENT_COLUMNS]).rename_columns(
        ["clip_id", *(f"committed_{c}" for c in CONTENT_COLUMNS)]
    )
    both = ours.join(theirs, "clip_id", join_type="inner")
    problems = []
    for column in CONTENT_COLUMNS:
        differs = pc.fill_null(pc.not_equal(both[column], both[f"committed_{column}"]), True)
        rows = sorted(both.filter(differs)["row"].to_pylist())
        if rows:
            problems.append(f"column '{column}': differs from the clip already generated under the same clip_id "
                            f"in {format_rows(rows)}")
    if problems:
        problems.append(f"those clips are committed in {out_uri}; give changed rows new clip_ids (or drop the "
                        "clip_id column to derive them from the content), or use a new --out")
        raise PlanError(plan_source, problems)
