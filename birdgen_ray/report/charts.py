"""The report's summary charts: class balance, quality-score distributions, gate verdicts, stage times.

Each function writes one PNG and returns its path. Figures use `matplotlib.figure.Figure` (Agg) so
no pyplot state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

MAX_BALANCE_BARS = 60  # more classes than this: the chart shows the rarest ones (the table has all)
REAL = "#7f7f7f"
SYNTHETIC = "#1f77b4"
FAILED = "#d62728"


RAW_LEVELS = ("peak_dbfs", "rms_dbfs")  # measured on the model output, before peak normalisation


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def balance_chart(classes: list, path: Path, real_known: bool) -> Path:
    """Horizontal bars per class: real (before) + synthetic that passed the gate (after)."""
    shown = sorted(classes, key=lambda c: ((c.real or 0) if real_known else c.passed, c.label))[:MAX_BALANCE_BARS]
    height = max(2.5, 0.28 * len(shown) + 1.2)
    fig = Figure(figsize=(8, height), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    y = list(range(len(shown)))
    real = [(c.real or 0) if real_known else 0 for c in shown]
    if real_known:
        ax.barh(y, real, color=REAL, label="real (before)")
    ax.barh(y, [c.passed for c in shown], left=real, color=SYNTHETIC, label="synthetic, passed the gate")
    failed = [c.failed for c in shown]
    if any(failed):
        passed_end = [r + c.passed for r, c in zip(real, shown)]
        ax.barh(y, failed, left=passed_end, color=FAILED, alpha=0.5, label="synthetic, failed the gate")
    ax.set_yticks(y, [c.label for c in shown], fontsize=7)
    ax.set_xlabel("clips")
    title = "Class balance: real + synthetic" if real_known else "Synthetic clips per class (real counts unknown)"
    if len(classes) > len(shown):
        title += f" ({len(shown)} rarest of {len(classes)} classes)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def metric_histograms(values: dict[str, list[float]], thresholds: dict[str, float], path: Path) -> Path:
    """One histogram per quality measurement; a dashed line where the gate's threshold sits."""
    names = list(values)
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows), dpi=100, layout="constrained")
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.hist(values[name], bins=20, color=SYNTHETIC)
        if name in thresholds:
            ax.axvline(thresholds[name], color=FAILED, linestyle="--", linewidth=1, label="gate")
            ax.legend(fontsize=7)
        ax.set_title(f"{name} (raw)" if name in RAW_LEVELS else name, fontsize=9)
        ax.tick_params(labelsize=7)
    if not names:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no quality measurements", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    return _save(fig, path)


def species_histogram(confidences: list[float], threshold: float | None, path: Path) -> Path:
    """Distribution of the target species' BirdNET confidence; a dashed line at the run's threshold."""
    fig = Figure(figsize=(4.8, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.hist(confidences, bins=20, range=(0.0, 1.0), color=SYNTHETIC)
    if threshold is not None:
        ax.axvline(threshold, color=FAILED, linestyle="--", linewidth=1, label=f"pass >= {threshold:g}")
        ax.legend(fontsize=7)
    ax.set_title("species confidence (BirdNET v2.4, max over 3 s windows)", fontsize=9)
    ax.set_xlabel("confidence", fontsize=8)
    ax.set_ylabel("clips", fontsize=8)
    ax.tick_params(labelsize=7)
    return _save(fig, path)


def verdict_chart(counts: dict[str, int], path: Path) -> Path:
    """Clips per gate verdict: 'pass' and each failure reason (a clip can fail for several)."""
    names = sorted(counts, key=lambda n: (n != "pass", n))
    fig = Figure(figsize=(5, 2.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    colors = [SYNTHETIC if n == "pass" else FAILED for n in names]
    bars = ax.bar(names, [counts[n] for n in names], color=colors)
    ax.bar_label(bars, fontsize=7)
    ax.set_ylabel("clips")
    ax.set_title("Quality gate verdicts", fontsize=10)
    ax.tick_params(axis="x", labelsize=7, rotation=20)
    return _save(fig, path)


def stage_chart(stage_seconds: dict[str, float], path: Path) -> Path:
    """Actor seconds spent per stage (generate, postprocess, write, ...) in the last run."""
    names = list(stage_seconds)
    fig = Figure(figsize=(5, 2.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    bars = ax.barh(names, [stage_seconds[n] for n in names], color=SYNTHETIC)
    ax.bar_label(bars, fmt="%.1f s", fontsize=7)
    ax.set_xlabel("actor seconds")
    ax.set_title("Time per stage (last run)", fontsize=10)
    return _save(fig, path)
