"""Real-plan prompts for the benchmarks: the first two 256-row shards of the plan that

    birdgen-ray plan examples/train_metadata.csv --target 300 -o plan.parquet

writes (shard order: make_shards sorts by duration, then clip_id; all rows are 5 s). They are kept in
bench/plan_prompts.csv (clip_id, label, prompt, negative_prompt, seed, duration_s) so that the GPU
machine, which has no CLI install, reads the same rows. Regenerate with
`python bench/plan_prompts.py` (it runs that command into a temporary folder).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

from birdgen_ray.rows import PlanRow

PROMPTS_CSV = Path(__file__).with_name("plan_prompts.csv")
PLAN_COMMAND = ["plan", "examples/train_metadata.csv", "--target", "300"]
SHARD_ROWS = 256
KEPT_ROWS = 2 * SHARD_ROWS


def plan_rows(count: int, duration: float | None = None, offset: int = 0) -> list[PlanRow]:
    """`count` rows of the real plan from `offset` (wrapping round, each wrap a new seed), at `duration`
    seconds (None: the plan's own 5 s)."""
    with PROMPTS_CSV.open(newline="") as f:
        kept = list(csv.DictReader(f))
    rows = []
    for i in range(offset, offset + count):
        r, lap = kept[i % len(kept)], i // len(kept)
        rows.append(
            PlanRow(
                r["clip_id"] if lap == 0 else f"{r['clip_id']}-{lap}",
                r["label"],
                r["prompt"],
                r["negative_prompt"],
                int(r["seed"]) + lap,
                float(r["duration_s"]) if duration is None else duration,
            )
        )
    return rows


def main() -> None:
    import pyarrow.parquet as pq

    from birdgen_ray.plan.validate import validate_plan
    from birdgen_ray.schedule.shards import make_shards

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.parquet"
        cli = [sys.executable, "-c", "from birdgen_ray.cli import run; run()", *PLAN_COMMAND, "-o", str(out)]
        subprocess.run(cli, cwd=root, check=True, stdout=subprocess.DEVNULL)
        plan = validate_plan(pq.read_table(out))
    shards = make_shards(plan, SHARD_ROWS)[: KEPT_ROWS // SHARD_ROWS]
    columns = ["clip_id", "label", "prompt", "negative_prompt", "seed", "duration_s"]
    with PROMPTS_CSV.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for shard in shards:
            for row in shard.plan_slice.select(columns).to_pylist():
                writer.writerow(row)
    print(f"wrote {PROMPTS_CSV} ({len(shards)} shards of {SHARD_ROWS} rows)")


if __name__ == "__main__":
    main()
