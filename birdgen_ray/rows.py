"""The row type that planning and generation share: one clip to make.

It stands below both `plan` (which writes such rows) and `generate` (which renders them), so that
the model side never depends on the planning side.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NEGATIVE_PROMPT = "Low quality, distorted, music, speech."


@dataclass(frozen=True)
class PlanRow:
    clip_id: str
    label: str
    prompt: str
    negative_prompt: str
    seed: int
    duration_s: float
    # Reference-conditioned rows (SDEdit); all None on a text-only row
    reference: str | None = None  # recording, relative to reference_root (or absolute)
    reference_root: str | None = None  # where the plan's references were found (local or fsspec URI)
    reference_start_s: float | None = None  # where the row's duration_s window starts in it
    strength: float | None = None  # 0: the reference itself ... 1: the whole schedule from noise


# The core columns of a plan, in order (plan.schema.PLAN_SCHEMA types them); then the optional
# reference columns, which only plans made with references have.
PLAN_COLUMNS = ("clip_id", "label", "prompt", "negative_prompt", "seed", "duration_s")
REFERENCE_COLUMNS = ("reference", "reference_root", "reference_start_s", "strength")


def plan_rows(table) -> list[PlanRow]:
    """A plan table's rows as PlanRows (any table with `column.to_pylist()`; no pyarrow import here)."""
    names = [c for c in (*PLAN_COLUMNS, *REFERENCE_COLUMNS) if c in PLAN_COLUMNS or c in table.column_names]
    cols = [table[c].to_pylist() for c in names]
    return [PlanRow(**dict(zip(names, values))) for values in zip(*cols)]
