"""The benchmark scripts run on CPU with the tiny model and count what they claim to count, so the one
prepared GPU run (bench/gpu_bench.sh) does not fail on code that CI never ran."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import counters  # noqa: E402
import engine_bench  # noqa: E402
import invariance_bench  # noqa: E402
import renderer_bench  # noqa: E402

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds  # noqa: E402
from birdgen_ray.generate.engine import AudioLDM2Engine  # noqa: E402

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")


def test_engine_bench_runs_every_case_and_counts_unet_forwards(tmp_path, capsys):
    report = engine_bench.main(
        [
            "--device",
            "cpu",
            "--model",
            "tiny",
            "--duration",
            "0.5",
            "--steps-scale",
            "0.02",
            "--naive-clips",
            "2",
            "--batch",
            "2",
            "--clips",
            "3",
            "--fast-clips",
            "4",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    cases = {c["case"]: c for c in report["cases"]}
    # no compiled case on CPU by default
    assert list(cases) == ["naive", "diffusers_batched", "engine_ddim", "engine_fast", "end_to_end"]
    ddim, fast = report["options"]["ddim_steps"], report["options"]["fast_steps"]
    assert (ddim, fast) == (3, 2)
    # one UNet forward per step and per call: naive calls per clip, the engine per (padded) batch
    assert cases["naive"]["unet_forwards"] == 2 * ddim
    assert cases["engine_ddim"]["unet_forwards"] == math.ceil(3 / 2) * ddim
    assert cases["engine_fast"]["unet_forwards"] == math.ceil(4 / 2) * fast
    assert cases["diffusers_batched"]["unet_forwards"] == math.ceil(4 / 2) * fast  # the same batches
    assert cases["diffusers_batched"]["batch"] == 2 and cases["diffusers_batched"]["scheduler"] == "dpm"
    assert cases["end_to_end"]["bytes_written"] > 4 * 16_000  # four WAVs at 32 kHz, 0.5 s, 16-bit
    assert cases["end_to_end"]["stages_s_per_clip"]["wav"] > 0  # the tar, the index, the commit
    assert all(case["fp16_reruns"] == 0 for case in cases.values())
    assert set(report["headline"]) == {
        "engine_fast x batched diffusers",
        "engine_fast x naive",
        "end_to_end / engine_fast",
        "engine_ddim x naive",
    }
    # a batch of 2 clips is about twice the UNet work of one (cross-attention grows with the texts' lengths)
    ratio = cases["engine_fast"]["unet_tflop_per_forward"] / cases["naive"]["unet_tflop_per_forward"]
    assert 1.8 < ratio < 2.2
    for case in cases.values():
        assert case["clips_per_s"] > 0 and case["stages_s_per_clip"]["unet"] > 0
        assert set(case["stages_s_per_clip"]) == set(engine_bench.STAGES)
    assert report["speedup_vs_naive"]["naive"] == 1.0
    printed = capsys.readouterr().out
    assert "x naive" in printed and "MFU" in printed
    assert (tmp_path / "r.json").read_text().count('"case"') == 5
    assert "x batched diffusers" in printed


def test_scheduler_steps_count_the_same_forwards_as_wrapping_the_unet():
    """How a compiled case counts (outside the UNet) agrees with the eager count, for both solvers."""
    for scheduler, steps in (("ddim", 3), ("dpm", 2)):
        generation = GenerationConfig(
            model="tiny", scheduler=scheduler, num_inference_steps=steps, quality=QualityThresholds(max_retries=0)
        )
        engine = AudioLDM2Engine(generation, EngineConfig(batch_size=2, device="cpu"))
        eager, outside = counters.UNetCalls(engine.pipe.unet), counters.SchedulerSteps(engine.pipe.scheduler)
        engine.generate(engine_bench.make_rows(3, 0.5, first_seed=0))
        assert outside.count == eager.count == 2 * steps
        eager.remove()
        outside.remove()


def test_invariance_bench_separates_the_engine_from_naive_batching(tmp_path, capsys):
    report = invariance_bench.main(
        [
            "--device",
            "cpu",
            "--model",
            "tiny",
            "--duration",
            "0.5",
            "--steps",
            "2",
            "--batch",
            "4",
            "--json",
            str(tmp_path / "inv.json"),
        ]
    )
    results = {r["comparison"]: r for r in report["results"]}
    grouped = next(name for name in results if name.startswith("conditioning: engine alone vs grouped with"))
    assert all(r["dtype"] == "float32" for r in report["results"])  # CPU: fp32 only
    assert len(results) == 7 and not grouped.endswith(" 0")  # the target did share its group
    assert results["conditioning: engine vs diffusers encode_prompt"]["relative_l2"] < 1e-5
    assert results[grouped]["relative_l2"] < 1e-5
    assert results["conditioning: diffusers alone vs padded among 3"]["relative_l2"] > 1e-2  # the leak
    assert results["audio: engine alone vs alone again (floor)"]["relative_l2"] == 0.0
    assert results["audio: engine alone vs in a batch of 4"]["relative_l2"] < 1e-5
    assert results["audio: naive diffusers alone vs in a batch of 3"]["relative_l2"] > 1e-2
    assert results["audio: same seed, other prompt (sensitivity)"]["relative_l2"] > 1e-2
    assert "relative L2" in capsys.readouterr().out


def test_invariance_bench_encodes_afresh_in_each_dtype():
    """The fp32 rows must not reuse encodings cached in fp16 (here: float64, then float32, on the CPU)."""
    generation = GenerationConfig(model="tiny", num_inference_steps=2, quality=QualityThresholds(max_retries=0))
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=2, device="cpu"))
    _, rows = invariance_bench.target_and_mates(2, 0.5)
    invariance_bench.measure(engine, rows, 2, 2, torch.float64)
    assert {e.t5_embeds.dtype for e in engine.encoder._cache.values()} == {torch.float64}
    results = invariance_bench.measure(engine, rows, 2, 2, torch.float32)
    assert {e.t5_embeds.dtype for e in engine.encoder._cache.values()} == {torch.float32}
    assert {r["dtype"] for r in results} == {"float32"}


def test_a_case_past_its_cap_is_cut_off_and_reruns_are_counted_from_the_engines_warnings():
    import time

    import cases

    with pytest.raises(cases.CaseTimedOut, match="0.2 s cap"):
        with cases.case_cap(0.2):
            time.sleep(5)
    generation = GenerationConfig(model="tiny", num_inference_steps=2, quality=QualityThresholds(max_retries=0))
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=2, device="cpu"))
    calls = [0]

    def first_clip_nan_once(_module, _inputs, output):
        calls[0] += 1
        if calls[0] == 1:
            output = output.clone()
            output[0] = float("nan")
        return output

    engine.pipe.vocoder.register_forward_hook(first_clip_nan_once)
    with cases.RerunCounter().counting() as counter:
        engine.generate(engine_bench.make_rows(2, 0.5, first_seed=0))
    assert (counter.reruns, counter.persistent) == (1, 0)


def test_the_gpu_scripts_smoke_step_passes_here_and_stops_with_one_line_where_the_device_is_missing(capsys):
    import smoke

    assert smoke.main(["--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("smoke ok in ")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the failing half needs a machine without it")
    assert smoke.main(["--device", "cuda"]) == 1
    printed = capsys.readouterr().out
    assert (
        printed.startswith("SMOKE FAILED at building and loading the tiny model on cuda") and printed.count("\n") == 1
    )


def test_the_bench_gives_the_engine_module_its_own_loader_back():
    """Its shared pipeline must not leak into engines built after it in the same process (the tests)."""
    import cases

    from birdgen_ray.generate.renderers import audioldm2 as renderer_module

    original = renderer_module.load_pipeline
    with cases.SharedPipelines().installed() as pipes:
        assert renderer_module.load_pipeline is pipes
    assert renderer_module.load_pipeline is original


def test_renderer_bench_measures_both_families_at_equal_clip_length(tmp_path):
    """The CPU proxy of both tiny renderers: counts that grow with the clip, and the ratios between them."""
    short, long = (
        renderer_bench.main(["--device", "cpu", "--duration", str(d), "--steps", "2", "--json", str(tmp_path / f"{d}")])
        for d in (0.25, 0.5)
    )
    for family in ("audioldm2", "stable-audio-open"):
        a, b = short["families"][family], long["families"][family]
        assert 0 < a["gflop_per_clip"] < b["gflop_per_clip"] and 0 < a["kernels_per_clip"] and a["seconds_per_clip"] > 0
    assert long["families"]["stable-audio-open"]["model_id"] == "tiny-stable-audio-1"
    ratio = long["stable_audio_over_audioldm2"]
    families = long["families"]
    assert ratio["gflop_per_clip"] == pytest.approx(
        families["stable-audio-open"]["gflop_per_clip"] / families["audioldm2"]["gflop_per_clip"], abs=0.01
    )
    assert (tmp_path / "0.5").is_file()


def test_kernel_count_splits_aten_ops_by_stage_and_the_unet_is_the_same_in_both(tmp_path):
    """Same UNet, VAE and vocoder calls at the same batch and steps: equal op counts there; the engine's
    bucketed, cached encoding launches fewer ops than diffusers' encode_prompt."""
    import kernel_count

    report = kernel_count.main(
        ["--model", "tiny", "--batch", "2", "--steps", "2", "--skip-counts", "--json", str(tmp_path / "k.json")]
    )
    engine, diffusers = report["aten_ops_per_clip"]["engine"], report["aten_ops_per_clip"]["diffusers_batched"]
    for name in ("unet", "vae", "vocoder"):
        assert engine[name] == diffusers[name] > 0
    assert 0 < engine["text"] < diffusers["text"]
    for figures in (engine, diffusers):
        assert figures["total"] == sum(figures[s] for s in ("text", "unet", "vae", "vocoder", "other"))
    assert engine["engine_counts"]["unet_rows"] == 2 * 2  # one batch of 2, two steps: unpadded
    assert (tmp_path / "k.json").exists()


def test_the_bench_prompts_are_the_real_plans_first_shards():
    import plan_prompts

    rows = plan_prompts.plan_rows(plan_prompts.KEPT_ROWS + 1)
    assert {r.duration_s for r in rows} == {5.0}
    assert len({r.clip_id for r in rows}) == len(rows)  # the wrap-around row is a new clip with a new seed
    assert rows[-1].prompt == rows[0].prompt and rows[-1].seed == rows[0].seed + 1
    # a shard is sorted by clip_id, so mostly one class; its prompts still vary (styles, call types, places)
    assert len({r.prompt for r in rows[: plan_prompts.SHARD_ROWS]}) > plan_prompts.SHARD_ROWS // 2
