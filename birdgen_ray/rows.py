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


# PlanRow's fields in order: the core columns of a plan (plan.schema.PLAN_SCHEMA types them).
PLAN_COLUMNS = tuple(PlanRow.__dataclass_fields__)


def plan_rows(table) -> list[PlanRow]:
    """A plan table's rows as PlanRows (any table with `column.to_pylist()`; no pyarrow import here)."""
    cols = [table[c].to_pylist() for c in PLAN_COLUMNS]
    return [PlanRow(*values) for values in zip(*cols)]
