"""EVAL/index.html: one self-contained page (inline CSS and SVG, no scripts, no network) of evaluation.json."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import jinja2

from birdgen_ray.evaluate.metrics import BINS, METRICS
from birdgen_ray.io.storage import write_file_atomic

TEMPLATE = (resources.files("birdgen_ray") / "data" / "evaluation.html.j2").read_text(encoding="utf-8")
METRIC_NAMES = {"roc_auc": "ROC-AUC", "cmap": "padded cmAP", "f1": "F1 @ threshold"}
PLOT_W, PLOT_H, MARGIN = 640, 260, 44


def num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def interval(ci, digits: int = 3) -> str:
    return f"[{num(ci[0], digits)}, {num(ci[1], digits)}]" if ci else "–"


def verdict_class(verdict: str | None) -> str:
    """Green only for a gain whose whole interval is above 0, red for a loss likewise; else plain."""
    return {"gain": "up", "loss": "down"}.get(verdict or "", "")


def scatter(result: dict, band: str, variant: str, metric: str = "roc_auc") -> dict:
    """SVG geometry of one variant's per-class difference (y) against the class's real count (x, log)."""
    classes = result["classes"]
    values = result["bands"][band]["variants"]
    base, mine = values["real only"]["per_class"][metric], values[variant]["per_class"][metric]
    output = variant.split(": ", 1)[0]
    points = [(c["label"], c["real_count"], m - b, c["synthetic"].get(output, 1) > 0)
              for c, b, m in zip(classes, base, mine) if b is not None and m is not None]  # fmt: skip
    top = max([abs(p[2]) for p in points] + [0.05])
    high = math.log10(max([p[1] for p in points] + [10]))
    x = lambda n: MARGIN + (PLOT_W - 2 * MARGIN) * math.log10(n) / high  # noqa: E731
    y = lambda d: PLOT_H / 2 - (PLOT_H / 2 - 16) * d / top  # noqa: E731
    return {
        "points": [
            {"label": lb, "x": round(x(n), 1), "y": round(y(d), 1), "n": n, "d": d, "has_synthetic": has}
            for lb, n, d, has in points
        ],
        "zero": round(y(0.0), 1),
        "ticks": [{"x": round(x(n), 1), "n": n} for n in (1, 2, 5, 10, 50, 100, 1000) if math.log10(n) <= high],
        "top": top,
        "width": PLOT_W,
        "height": PLOT_H,
        "margin": MARGIN,
    }


_ENV = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENV.globals.update(
    num=num, interval=interval, scatter=scatter, verdict_class=verdict_class, METRICS=METRICS, METRIC_NAMES=METRIC_NAMES
)
_ENV.globals["BINS"] = [name for name, _, _ in BINS]
_PAGE = _ENV.from_string(TEMPLATE)


def render_page(result: dict) -> str:
    return _PAGE.render(result=result)


def write_page(result: dict, path: Path) -> Path:
    write_file_atomic(path, render_page(result).encode("utf-8"))
    return path
