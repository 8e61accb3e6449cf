"""The pinned tiny-model clips: the cases, how to render them, and how to re-pin (tests/pinned_clips.json).

Two families of cases, both on the built-in tiny model, CPU, one torch thread:
- text-only clips at 3 steps under DPM-Solver++ and DDIM (pinned first before the engine owned its
  denoising loop);
- five clips at 2 steps under three queue shapes: one take each, two candidate takes ranked by CLAP,
  and a level gate (`min_peak_dbfs` -27) that rejects some first takes (pinned first before the engine's
  speed work).

Re-pin (only with a reason, in the commit message: a lock upgrade, a deliberate change of the audio):
    .venv/bin/python -m tests.pinned_cases
"""

from __future__ import annotations

import json
from pathlib import Path

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds
from birdgen_ray.rows import PlanRow

PINS_FILE = Path(__file__).with_name("pinned_clips.json")

THREE_ROWS = [
    PlanRow("a", "wren", "A song of a Eurasian wren", "noise", 7, 1.0),
    PlanRow("b", "frog", "frog", "Low quality", 11, 1.0),
    PlanRow("c", "owl", "an owl hooting at night", "noise", 3, 1.5),
]
FIVE_ROWS = [
    *THREE_ROWS,
    PlanRow("d", "owl", "a tawny owl", "noise", 5, 1.0),
    PlanRow("e", "wren", "cricket chorus at dusk", "noise", 9, 1.0),
]
ONE_TRY = QualityThresholds(max_retries=0)
CASES = {  # name: (rows, GenerationConfig fields, batch size)
    "text-only dpm": (THREE_ROWS, dict(scheduler="dpm", num_inference_steps=3, quality=ONE_TRY), 2),
    "text-only ddim": (THREE_ROWS, dict(scheduler="ddim", num_inference_steps=3, quality=ONE_TRY), 2),
    "one take": (FIVE_ROWS, dict(num_inference_steps=2, quality=ONE_TRY), 2),
    "two candidates": (FIVE_ROWS, dict(num_inference_steps=2, candidates_per_clip=2, quality=ONE_TRY), 4),
    "level gate retries": (
        FIVE_ROWS,
        dict(num_inference_steps=2, quality=QualityThresholds(max_retries=2, min_peak_dbfs=-27.0)),
        2,
    ),
}


def render(name: str, **changes) -> list:
    """The case's clips from a fresh engine; `changes` alter its GenerationConfig (for the controls)."""
    from birdgen_ray.generate.engine import AudioLDM2Engine

    rows, fields, batch_size = CASES[name]
    generation = GenerationConfig(model="tiny", **{**fields, **changes})
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=batch_size, device="cpu"))
    return engine.generate(rows)


def load_pins() -> dict:
    return json.loads(PINS_FILE.read_text())


def _repin() -> None:
    import os
    import tempfile

    import torch

    from tests.pins import pin_of, platform_key

    os.environ["BIRDGEN_CACHE"] = tempfile.mkdtemp(prefix="birdgen-pins-")  # a freshly built tiny model
    torch.set_num_threads(1)
    cases = {}
    for name in CASES:
        cases[name] = {
            clip.clip_id: {**pin_of(clip.audio), "final_seed": clip.final_seed, "attempts": clip.attempts}
            for clip in render(name)
        }
    PINS_FILE.write_text(json.dumps({"pinned_on": platform_key(), "cases": cases}, indent=1) + "\n")
    print(f"re-pinned {sum(map(len, cases.values()))} clips in {PINS_FILE} on {platform_key()}")


if __name__ == "__main__":
    _repin()
