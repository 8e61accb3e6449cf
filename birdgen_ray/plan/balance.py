"""The balance report: per class and per taxon class, real counts before and real + synthetic after.

Files (prefix = the plan's file stem):
  <prefix>.balance_classes.csv  label, taxon_class, common_name, real_count, synthetic_count, total, rule,
                                call_types (sound word:recordings), dropped_types (`type` value:recordings
                                of values dropped or mapping to no sound word)
  <prefix>.balance_taxa.csv     taxon_class, classes, planned_classes, real_count, synthetic_count, total
  <prefix>.balance.png          per-class counts sorted by real count, and per-taxon-class totals
"""

from __future__ import annotations

import csv
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from birdgen_ray.plan.budget import Allocation
from birdgen_ray.plan.call_types import CallTypeReport
from birdgen_ray.plan.metadata import ClassStats

CLASS_COLUMNS = [
    "label",
    "taxon_class",
    "common_name",
    "real_count",
    "synthetic_count",
    "total",
    "rule",
    "call_types",
    "dropped_types",
]
TAXON_COLUMNS = ["taxon_class", "classes", "planned_classes", "real_count", "synthetic_count", "total"]
_MAX_TICK_LABELS = 60  # beyond this many classes the per-class axis shows no names


@dataclass(frozen=True)
class ReportFiles:
    classes_csv: Path
    taxa_csv: Path
    plot_png: Path


def class_rows(
    classes: list[ClassStats], allocations: dict[str, Allocation], call_types: dict[str, CallTypeReport] | None = None
) -> list[dict]:
    rows = []
    for c in sorted(classes, key=lambda c: c.label):
        a = allocations[c.label]
        cells = (call_types or {}).get(c.label, CallTypeReport()).cells()
        rows.append(
            {
                "label": c.label,
                "taxon_class": c.taxon_class,
                "common_name": c.common_name,
                "real_count": a.real_count,
                "synthetic_count": a.synthetic_count,
                "total": a.real_count + a.synthetic_count,
                "rule": a.rule,
                **cells,
            }
        )
    return rows


def taxon_rows(rows: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["taxon_class"], dict.fromkeys(TAXON_COLUMNS, 0) | {"taxon_class": r["taxon_class"]})
        t["classes"] += 1
        t["planned_classes"] += r["synthetic_count"] > 0
        for key in ("real_count", "synthetic_count", "total"):
            t[key] += r[key]
    return [out[name] for name in sorted(out)]


def write_report(
    classes: list[ClassStats],
    allocations: dict[str, Allocation],
    report_dir: str | Path,
    prefix: str,
    target: int | None = None,
    call_types: dict[str, CallTypeReport] | None = None,
) -> ReportFiles:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = class_rows(classes, allocations, call_types)
    files = ReportFiles(
        report_dir / f"{prefix}.balance_classes.csv",
        report_dir / f"{prefix}.balance_taxa.csv",
        report_dir / f"{prefix}.balance.png",
    )
    _write_csv(files.classes_csv, CLASS_COLUMNS, rows)
    _write_csv(files.taxa_csv, TAXON_COLUMNS, taxon_rows(rows))
    _plot(rows, files.plot_png, target)
    return files


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _plot(rows: list[dict], path: Path, target: int | None) -> None:
    import matplotlib.pyplot as plt

    fig = balance_figure(rows, target)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def balance_figure(rows: list[dict], target: int | None):
    """The balance plot as a matplotlib Figure: per class (log count axis) and per taxon class."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    by_real = sorted(rows, key=lambda r: (-r["real_count"], r["label"]))
    taxa = taxon_rows(rows)
    fig, (ax_cls, ax_tax) = plt.subplots(
        1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 1]}, constrained_layout=True
    )
    x = range(len(by_real))
    real = [r["real_count"] for r in by_real]
    grey = ["#d0d0d0" if r["rule"] == "excluded" else "#7f7f7f" for r in by_real]
    ax_cls.bar(x, real, width=1.0, color=grey, label="real (light: excluded)")
    ax_cls.bar(
        x, [r["synthetic_count"] for r in by_real], bottom=real, width=1.0, color="#1f77b4", label="synthetic (planned)"
    )
    if target is not None:
        ax_cls.axhline(target, color="#d62728", linestyle="--", linewidth=1, label=f"target {target}")
    ax_cls.set_title(f"Per class ({len(rows)} classes, sorted by real count)")
    # Counts span 1 to thousands: on a linear axis the topped-up classes are a sliver at the right.
    ax_cls.set_yscale("log")
    ax_cls.set_ylabel("clips (log scale)")
    topped_up = [i for i, r in enumerate(by_real) if r["synthetic_count"] > 0]
    if len(by_real) <= _MAX_TICK_LABELS:
        ax_cls.set_xticks(list(x), [r["label"] for r in by_real], rotation=90, fontsize=7)
    elif len(topped_up) <= _MAX_TICK_LABELS:  # too many to name them all: name the topped-up ones
        ax_cls.set_xticks(topped_up, [by_real[i]["label"] for i in topped_up], rotation=90, fontsize=7)
        ax_cls.set_xlabel(f"classes (named: the {len(topped_up)} topped up)")
    else:
        ax_cls.set_xticks([])
        ax_cls.set_xlabel(f"classes ({len(topped_up)} topped up)")
    ax_cls.legend()
    names = [t["taxon_class"] for t in taxa]
    ax_tax.bar(names, [t["real_count"] for t in taxa], color="#7f7f7f", label="real")
    ax_tax.bar(
        names,
        [t["synthetic_count"] for t in taxa],
        bottom=[t["real_count"] for t in taxa],
        color="#1f77b4",
        label="synthetic (planned)",
    )
    ax_tax.set_title("Per taxon class")
    ax_tax.set_yscale("log")
    ax_tax.tick_params(axis="x", rotation=45)
    return fig


def print_summary(
    classes: list[ClassStats],
    allocations: dict[str, Allocation],
    console: Console,
    call_types: CallTypeReport | None = None,
) -> None:
    """A few lines: one table row per taxon class, then spread, rules and the call-type mapping."""
    rows = class_rows(classes, allocations)
    table = Table(title="birdgen-ray plan", title_justify="left")
    for name, justify in (
        ("taxon class", "left"),
        ("classes", "right"),
        ("classes topped up", "right"),
        ("real clips", "right"),
        ("synthetic", "right"),
        ("after", "right"),
    ):
        table.add_column(name, justify=justify)
    taxa = taxon_rows(rows)
    for t in taxa:
        table.add_row(t["taxon_class"], *(str(t[k]) for k in TAXON_COLUMNS[1:]))
    if len(taxa) > 1:
        table.add_row("all", *(str(sum(t[k] for t in taxa)) for k in TAXON_COLUMNS[1:]), style="bold")
    console.print(table)
    kept = [r for r in rows if r["rule"] != "excluded"]
    if kept:
        before = [r["real_count"] for r in kept]
        after = [r["total"] for r in kept]
        console.print(
            f"per class (selected): min/median/max {min(before)}/{statistics.median(before):g}/{max(before)}"
            f" -> {min(after)}/{statistics.median(after):g}/{max(after)}"
        )
    rules = Counter(r["rule"] for r in rows)
    console.print("rule per class: " + ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items())))
    lines = call_types.lines() if call_types is not None else []
    if lines:
        console.print(
            "call types (Xeno-canto `type` -> sound word, recordings of the selected classes):", highlight=False
        )
        for line in lines:
            console.print(line, highlight=False, markup=False)
