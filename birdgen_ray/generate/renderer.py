"""The renderer interface: what one model family gives the engine, and the records they share.

The engine (generate/engine.py) owns what is the same for every model: the take queue
(generate/take_queue.py), candidate takes, retries, the quality gate, the BirdNET verifier, NaN
reruns and post-processing. A renderer owns one model family: its weights, its text encoders, its
scheduler maths, its latent layout and its native sample rate. The engine renders a batch as

    renderer.encode(texts)                        # the shard's texts, once, up front (cached per text)
    start = renderer.prepare(rows, duration_s)    # starting latents, one CPU generator per row
    latents = renderer.denoise(start)             # rows may start at different scheduler steps
    audio = renderer.decode(latents, duration_s)  # float32 (rows, samples) at renderer.sample_rate

and never reads a tensor's layout: latents go back to the renderer that made them.

How a family plugs in:
  1. a class with the attributes and methods of `Renderer`, in generate/renderers/<family>.py;
  2. `prepare` draws row i's starting noise from torch.Generator().manual_seed(rows[i].seed) (on the
     CPU, first draw, so a seed gives the same noise on every device), and starts a reference row
     from its own encoding of rows[i].reference noised to rows[i].start_step: reference loading is
     the family's own business (AudioLDM2: a VAE encoding of the window's log-mel);
  3. `denoise` must give each row what it would get alone: per-row conditioning, per-row timesteps
     or per-start-step scheduler state, never a statistic over the batch; rows of one batch may have
     different `start_step`s (the queue sorts takes by it, so a batch holds few distinct ones);
  4. `start_step(strength, steps)` says where a reference row starts (0: from pure noise); a family
     whose scheduler cannot start part-way raises ValueError there, and the CLI refuses the run;
  5. it adds what it runs to `counts` (EngineCounts): encoder calls and UNet/DiT rows, padding apart;
  6. its constructor is `(generation: GenerationConfig, engine: EngineConfig, stage: StageTimer,
     storage_options: dict | None)`: it loads the model, fits `choices` to the device and applies
     them (compile, cuDNN autotune); the engine may lower `choices["batch_size"]` after an OOM;
  7. it is named in generate/renderers/__init__.py's RENDERERS under its `family`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from birdgen_ray.generate.batch_size import Choice
from birdgen_ray.rows import PlanRow

StageTimer = Callable[[str], AbstractContextManager]  # StageClock.stage: times a named stage


@dataclass(frozen=True)
class ReferenceWindow:
    """A recording a row starts from: its URI (local path or fsspec URI) and the window's start."""

    uri: str
    start_s: float = 0.0


def reference_window(row: PlanRow) -> ReferenceWindow | None:
    """The plan row's reference recording and window start, or None for a text-only row."""
    if not row.reference:
        return None
    from birdgen_ray.io.recordings import reference_uri  # here: it brings soundfile, which text-only runs skip

    return ReferenceWindow(reference_uri(row.reference_root, row.reference), float(row.reference_start_s or 0.0))


def reference_strength(row: PlanRow) -> float | None:
    """The strength a renderer's start_step takes: None for a text-only row, 1 for a reference without one."""
    if not row.reference:
        return None
    return 1.0 if row.strength is None else float(row.strength)


@dataclass(frozen=True)
class RenderRow:
    """One row of a renderer batch: a take of a clip (padding repeats the batch's last real row)."""

    prompt: str
    negative_prompt: str
    seed: int  # the take's seed: its starting noise is the first draw of its own CPU generator
    start_step: int = 0  # scheduler steps skipped (Renderer.start_step); 0 without a reference
    reference: ReferenceWindow | None = None


@dataclass
class StartLatents:
    """What `prepare` hands `denoise`: the batch's rows and their starting state, in the renderer's layout."""

    rows: tuple[RenderRow, ...]
    duration_s: float
    latents: Any  # renderer-specific (AudioLDM2: a (rows, C, h, w) tensor)
    real_rows: int  # rows[:real_rows] are takes; the rest is padding (counted, output dropped)
    state: dict[str, Any] = field(default_factory=dict)  # renderer-specific extras (generators, clean latents)


@dataclass
class EngineCounts:
    """Work done, summed over a run: summary.json's `engine_counts` (schedule/summary.py)."""

    encoder_calls: int = 0  # calls of the text-encoder stack (one per bucket of texts encoded together)
    unet_rows: int = 0  # rows through the denoiser, summed over its calls (classifier-free halves once)
    padded_rows: int = 0  # of unet_rows: padding rows and rows held before their start step

    def as_dict(self) -> dict[str, int]:
        return {"encoder_calls": self.encoder_calls, "unet_rows": self.unet_rows, "padded_rows": self.padded_rows}

    def add(self, other: dict[str, int]) -> None:
        for name, value in other.items():
            setattr(self, name, getattr(self, name) + int(value))


class TakeScorer(Protocol):
    """Scores each take against its own prompt (AudioLDM2: CLAP); a family without one has scorer None."""

    batch_size: int

    def score(self, prompts: Sequence[str], audios: Sequence[np.ndarray], sample_rate: int) -> list[float]: ...


class Renderer(Protocol):
    family: str  # "audioldm2", "stable-audio-open", ...
    model_id: str  # recorded with every clip
    device: Any  # torch.device the model runs on (the stage clock waits for it)
    sample_rate: int  # native rate of decode()'s audio
    bandwidth_hz: float  # highest frequency the model renders (sample_rate / 2 for AudioLDM2)
    stages: tuple[str, ...]  # the stage names it times with the StageTimer it was given
    choices: dict[str, Choice]  # device-fitted settings: "batch_size", "compile_unet", "cudnn_benchmark"
    counts: EngineCounts
    scorer: TakeScorer | None

    def start_step(self, strength: float | None, steps: int) -> int:
        """Scheduler steps a row skips: 0 for text-only rows (strength None) and strength 1."""
        ...

    def encode(self, texts: Sequence[str]) -> None:
        """Encode (and cache) every text not cached yet, in few calls; batches then reuse the cache."""
        ...

    def prepare(self, rows: Sequence[RenderRow], duration_s: float, real_rows: int) -> StartLatents:
        """Starting latents: each row's noise from its own generator, or its reference at its start step."""
        ...

    def denoise(self, start: StartLatents) -> Any:
        """Final latents; each row runs its own steps from its start_step, whatever its batch-mates'."""
        ...

    def decode(self, latents: Any, duration_s: float) -> np.ndarray:
        """float32 (rows, duration_s x sample_rate) audio, on the CPU."""
        ...

    def rerun_precisions(self) -> Sequence[Any]:
        """Precisions to rerun non-finite rows in, in order (AudioLDM2 fp16: fp16 again, then fp32)."""
        ...

    def in_precision(self, precision: Any) -> AbstractContextManager:
        """Render in `precision` (no cached encodings from another precision; weights restored after)."""
        ...

    def reference_sha256(self, reference: ReferenceWindow | None) -> str | None:
        """sha256 of the reference recording's bytes (None without one)."""
        ...
