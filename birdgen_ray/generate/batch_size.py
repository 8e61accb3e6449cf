"""Engine defaults that fit the device: the batch size from free GPU memory, compile when it pays back.

The batch size comes from a table of activation memory per clip of the full-size AudioLDM2 engine,
measured by `bench/activation_memory.py` on the CPU (fp32, random weights, 2 DPM steps with CLAP
scoring): the peak RSS of one `generate` at batch 2 minus that at batch 1, per clip length (glibc's
cache trimmed and the peak mark reset before each). On a GPU the engine runs fp16, so the bytes are
halved, then multiplied by GPU_MARGIN for what the CPU does not show (cuDNN workspaces, the caching
allocator's fragmentation, other attention kernels). The free memory is read after the model has
loaded; from it are kept back the bytes an fp32 rerun of non-finite clips adds (it casts every weight
to fp32: as much again as the fp16 weights) and RESERVE_BYTES. The batch is the largest power of two
that fits, at most MAX_BATCH (beyond it the GPU is saturated and a shard's last batch pads more).

`torch.compile` of the UNet costs about COMPILE_SECONDS once per actor and clip length and makes each
UNet step about COMPILE_SPEEDUP times faster; it is on by default on CUDA when each actor has at least
COMPILE_PAYBACK_CLIPS clips to make, i.e. enough to earn the compile time back at an eager H100/H200
rate of EAGER_CLIPS_PER_S.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# (clip seconds, MiB of activations per extra clip in fp32 on the CPU): bench/activation_memory.py,
# full-size AudioLDM2 with random weights, 2-core CPU dev box, 2026-12-01 (BENCHMARKS.md). Measured:
# 1 s 49.9 and 70.1 (two runs), 2.5 s 37.2, 5 s 137.6, 10 s 291.5. Below 5 s the per-clip part is
# within the run-to-run noise of the batch-independent part, so 1 s and 2.5 s take the larger 1 s
# figure: an upper bound, and the table never falls with the clip length.
ACTIVATION_MIB_PER_CLIP_FP32 = ((1.0, 70.1), (2.5, 70.1), (5.0, 137.6), (10.0, 291.5))
# The same measure for full-size Stable Audio Open (bench/activation_memory.py --family stable-audio,
# 2026-12-05, BENCHMARKS.md): 1 s 245.2 and 5 s 531.2 MiB per clip, most of it the 44.1 kHz stereo
# VAE decode; past 5 s extrapolated along the same line (71.5 MiB per clip-second), not measured.
STABLE_AUDIO_ACTIVATION_MIB = ((1.0, 245.2), (5.0, 531.2))
GPU_MARGIN = 1.5
RESERVE_BYTES = 1 << 30
MAX_BATCH = 128
CPU_BATCH = 8  # no memory to read on the CPU: a batch that keeps the tiny model's tests fast
COMPILE_SECONDS = 100.0  # measured on an H200 with the full-size UNet (bench/README.md): 75-100 s
COMPILE_SPEEDUP = 1.3
EAGER_CLIPS_PER_S = 20.0  # estimate at DPM 25, 5 s clips, batch 64 (issue 17)
# clips whose saved time (1/eager - 1/compiled seconds each) adds up to the compile time
COMPILE_PAYBACK_CLIPS = round(COMPILE_SECONDS / (1 / EAGER_CLIPS_PER_S - 1 / (EAGER_CLIPS_PER_S * COMPILE_SPEEDUP)))


@dataclass(frozen=True)
class Choice:
    value: object
    why: str  # one line, for summary.json and submit's first lines


def activation_mib_per_clip(duration_s: float, table=ACTIVATION_MIB_PER_CLIP_FP32) -> float:
    """fp32 CPU MiB per clip at `duration_s`: linear between the table's rows, and beyond its ends."""
    seconds = [row[0] for row in table]
    i = min(max(bisect.bisect_left(seconds, duration_s), 1), len(seconds) - 1)
    (s0, m0), (s1, m1) = table[i - 1], table[i]
    return max(m0 + (m1 - m0) * (duration_s - s0) / (s1 - s0), 1.0)


def choose_batch_size(
    free_bytes: int,
    weight_bytes: int,
    duration_s: float,
    bytes_per_element: int = 2,
    table=ACTIVATION_MIB_PER_CLIP_FP32,
) -> Choice:
    """The largest power-of-two batch whose activations fit the free GPU memory (see the module doc)."""
    per_clip = activation_mib_per_clip(duration_s, table) * (1 << 20) * bytes_per_element / 4 * GPU_MARGIN
    usable = free_bytes - weight_bytes - RESERVE_BYTES
    fits = int(usable // per_clip) if usable > 0 else 0
    batch = 1
    while batch * 2 <= min(fits, MAX_BATCH):
        batch *= 2
    why = (
        f"auto: {free_bytes / 2**30:.1f} GiB free after loading, less {weight_bytes / 2**30:.1f} GiB for an fp32 "
        f"rerun and {RESERVE_BYTES / 2**30:.0f} GiB reserve, at ~{per_clip / 2**20:.0f} MiB per {duration_s:g} s clip: "
        f"{fits} fit -> {batch}" + (f" (at most {MAX_BATCH})" if fits > MAX_BATCH else "")
    )
    return Choice(batch, why)


def choose_compile(device_type: str, clips_per_actor: int | None) -> Choice:
    """Compile the UNet on CUDA when each actor makes enough clips to earn the compile time back."""
    if device_type != "cuda":
        return Choice(False, "auto: off (not CUDA)")
    if clips_per_actor is None:
        return Choice(False, "auto: off (clips per actor unknown)")
    on = clips_per_actor >= COMPILE_PAYBACK_CLIPS
    return Choice(
        on,
        f"auto: {'on' if on else 'off'} ({clips_per_actor} clips per actor {'>=' if on else '<'} "
        f"{COMPILE_PAYBACK_CLIPS}, which earn back ~{COMPILE_SECONDS:.0f} s of compiling)",
    )


def engine_choices(
    batch_size: int | None,
    compile_unet: bool | None,
    clip_duration_s: float | None,
    clips_per_actor: int | None,
    device_type: str,
    free_bytes: int | None = None,
    weight_bytes: int = 0,
    bytes_per_element: int = 2,
    activation_table=ACTIVATION_MIB_PER_CLIP_FP32,
) -> dict[str, Choice]:
    """Every speed setting of one actor's engine, asked for or chosen, with the reason."""
    if batch_size is not None:
        batch = Choice(batch_size, "asked for (--batch-size)")
    elif device_type == "cuda" and free_bytes is not None:
        # no clip length known: size for AudioLDM2's longest sensible clip (its CLAP window)
        duration = clip_duration_s or 10.0
        batch = choose_batch_size(free_bytes, weight_bytes, duration, bytes_per_element, activation_table)
    else:
        batch = Choice(CPU_BATCH, f"auto: {CPU_BATCH} (no GPU memory to size it by)")
    compiled = (
        Choice(compile_unet, "asked for (--compile/--no-compile)")
        if compile_unet is not None
        else choose_compile(device_type, clips_per_actor)
    )
    on_cuda = device_type == "cuda"
    cudnn = Choice(
        on_cuda,
        "auto: on (fixed batch shapes, so each one's fastest kernels are found once)"
        if on_cuda
        else "auto: off (not CUDA)",
    )
    return {"batch_size": batch, "compile_unet": compiled, "cudnn_benchmark": cudnn}


def fitted_choices(pipe, denoiser, device, engine, activation_table=ACTIVATION_MIB_PER_CLIP_FP32) -> dict[str, Choice]:
    """`engine_choices` for a loaded pipeline on `device`: its free GPU memory, and its weights' bytes
    when an fp32 rerun of non-finite clips would cast them up (as many bytes again as fp16 weights).
    `denoiser` is the module run at every step (the UNet, the DiT), whose dtype sizes the activations."""
    import torch

    from birdgen_ray.generate.weights import named_tensors

    free_bytes = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    weights = [t for _, _, _, t, _ in named_tensors(pipe)]
    return engine_choices(
        engine.batch_size,
        engine.compile_unet,
        engine.clip_duration_s,
        engine.clips_per_actor,
        device.type,
        free_bytes=free_bytes,
        weight_bytes=sum(t.numel() * t.element_size() for t in weights) if pipe.dtype != torch.float32 else 0,
        bytes_per_element=denoiser.dtype.itemsize,
        activation_table=activation_table,
    )
