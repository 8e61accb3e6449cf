"""The engine bench's headline ratios and printed tables."""

from __future__ import annotations

STAGES = ("text", "gpt2", "unet", "vae", "vocoder", "scoring", "postprocess", "wav")


def headline(cases: list[dict]) -> dict:
    """The ratios that answer 'is it worth it': against batched diffusers (same scheduler and steps), against the
    naive seed recipe, and what the shard path adds to the bare engine."""
    rate = {c["case"]: c["clips_per_s"] for c in cases if "clips_per_s" in c}
    ratios = {}
    if "engine_fast" in rate:
        if "diffusers_batched" in rate:
            ratios["engine_fast x batched diffusers"] = rate["engine_fast"] / rate["diffusers_batched"]
        if "naive" in rate:
            ratios["engine_fast x naive"] = rate["engine_fast"] / rate["naive"]
        if "end_to_end" in rate:
            ratios["end_to_end / engine_fast"] = rate["end_to_end"] / rate["engine_fast"]
    if "engine_ddim" in rate and "naive" in rate:
        ratios["engine_ddim x naive"] = rate["engine_ddim"] / rate["naive"]
    return ratios


def print_table(report: dict) -> None:
    cases = [c for c in report["cases"] if "clips_per_s" in c]
    base = next((c["clips_per_s"] for c in cases if c["case"] == "naive"), cases[0]["clips_per_s"])
    head = (
        f"{'case':<22}{'sched':>6}{'steps':>6}{'batch':>6}{'clips':>6}{'clips/s':>10}{'x naive':>9}{'s/clip':>9}"
        f"{'reruns':>8}"
    )
    print(f"\n{report['machine']} | {report['settings']} | load avg {report['load_average_before_after']}")
    if report.get("label"):
        print(report["label"])
    print(head)
    for c in cases:
        reruns = c.get("fp16_reruns", c.get("nonfinite_clips", 0))
        print(
            f"{c['case']:<22}{c['scheduler']:>6}{c['steps']:>6}{c['batch']:>6}{c['clips']:>6}"
            f"{c['clips_per_s']:>10.3f}{c['clips_per_s'] / base:>9.1f}{c['s_per_clip']:>9.4f}{reruns:>8}"
        )
    for c in report["cases"]:
        if "clips_per_s" not in c:
            print(f"{c['case']:<22}timed out: {c['error']}")
    print("\nheadline: " + ", ".join(f"{k} {v:.2f}" for k, v in report.get("headline", {}).items()))
    print("\nseconds per clip by stage")
    print(f"{'case':<22}" + "".join(f"{s:>12}" for s in STAGES) + f"{'other':>12}")
    for c in cases:
        print(
            f"{c['case']:<22}"
            + "".join(f"{c['stages_s_per_clip'][s]:>12.4f}" for s in STAGES)
            + f"{c['other_s_per_clip']:>12.4f}"
        )
    ceiling = report["matmul_ceiling_tflops"]
    print(
        f"\nUNet utilisation vs {report['matmul_ceiling']} ceiling of {ceiling:.2f} TFLOP/s "
        "(UNet-loop time includes the scheduler)"
    )
    for c in cases:
        if c["unet_forwards"]:
            print(
                f"{c['case']:<22}{c['unet_forwards']:>6} forwards x {c['unet_tflop_per_forward']:.4f} TFLOP"
                f" -> {c['unet_tflops_achieved']:.3f} TFLOP/s = {100 * c['unet_tflops_achieved'] / ceiling:.1f}% MFU"
            )
