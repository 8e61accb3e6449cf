"""Gather what the report shows from an output alone: index, summary, status, a sample per class."""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass, field

from birdgen_ray.index.reader import open_index
from birdgen_ray.index.schema import METRIC_COLUMNS, SUMMARY_FILE
from birdgen_ray.index.status import output_status
from birdgen_ray.write.storage import Output

# Index metric column -> the GenerationConfig.quality field that gates it.
GATE_FIELDS = {
    "clap_score": "min_clap_score",
    "silence_fraction": "max_silence_fraction",
    "clipping_fraction": "max_clipping_fraction",
    "peak_dbfs": "min_peak_dbfs",
}


@dataclass
class ClassSummary:
    label: str
    anchor: str  # HTML id; labels need not be safe in URLs
    common_name: str = ""
    scientific_name: str = ""
    taxon_class: str = ""
    real: int | None = None  # real recordings (plan extra `real_count`); None when unknown
    rule: str = ""
    synthetic: int = 0  # clips in the index
    passed: int = 0
    failed: int = 0
    samples: list[dict] = field(default_factory=list)  # index rows shown in the grid

    @property
    def after(self) -> int | None:
        return None if self.real is None else self.real + self.passed


@dataclass
class ReportData:
    out: str
    clips: int
    classes: list[ClassSummary]
    real_known: bool
    verdicts: Counter  # "pass" and "fail:<reason>", per reason
    metrics: dict[str, list[float]]  # finite values per metric column
    thresholds: dict[str, float]  # metric column -> gate threshold of the run
    model_ids: list[str]
    settings: dict  # GenerationConfig of the run (first row), {} if unreadable
    summary: dict | None  # summary.json of the last run
    status: dict | None  # planned / done / failed / pending


def collect(output: Output, per_class: int = 4, seed: int = 0, labels: list[str] | None = None) -> ReportData:
    """Read the output; pick `per_class` clips per class, the same ones every time for the same seed."""
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    index = open_index(output)
    rows = index.to_pylist()
    if labels:
        unknown = sorted(set(labels) - {r["label"] for r in rows})
        if unknown:
            raise ValueError(f"labels not in the index of {output.uri}: {', '.join(unknown)}")
        rows = [r for r in rows if r["label"] in set(labels)]
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    real_known = "real_count" in index.column_names and all(r.get("real_count") is not None for r in rows)

    classes = []
    for number, label in enumerate(sorted(by_label)):
        members = sorted(by_label[label], key=lambda r: r["clip_id"])
        first = members[0]
        passed = sum(1 for r in members if r["verdict"] == "pass")
        rng = random.Random(f"{seed}:{label}")  # str seeds are stable across runs and machines
        samples = sorted(rng.sample(members, min(per_class, len(members))), key=lambda r: r["clip_id"])
        classes.append(
            ClassSummary(
                label=label,
                anchor=f"class-{number}",
                common_name=first.get("common_name") or "",
                scientific_name=first.get("scientific_name") or "",
                taxon_class=first.get("taxon_class") or "",
                real=int(first["real_count"]) if real_known else None,
                rule=first.get("rule") or "",
                synthetic=len(members),
                passed=passed,
                failed=len(members) - passed,
                samples=samples,
            )
        )

    verdicts: Counter = Counter()
    for row in rows:
        if row["verdict"] == "pass":
            verdicts["pass"] += 1
        else:
            verdicts.update(f"fail:{reason}" for reason in row["verdict"].split(":", 1)[-1].split(","))
    metrics = {}
    for name in METRIC_COLUMNS:
        finite = [float(r[name]) for r in rows if r.get(name) is not None and math.isfinite(r[name])]
        if finite:
            metrics[name] = finite
    settings = _settings(rows)
    quality = settings.get("quality", {})
    thresholds = {m: quality[f] for m, f in GATE_FIELDS.items() if quality.get(f) is not None}
    return ReportData(
        out=output.uri,
        clips=len(rows),
        classes=classes,
        real_known=real_known,
        verdicts=verdicts,
        metrics=metrics,
        thresholds=thresholds,
        model_ids=sorted({r["model_id"] for r in rows}),
        settings=settings,
        summary=output.read_json(SUMMARY_FILE) if output.exists(SUMMARY_FILE) else None,
        status=_status(output),
    )


def _settings(rows: list[dict]) -> dict:
    try:
        return json.loads(rows[0]["settings"]) if rows else {}
    except (TypeError, ValueError):
        return {}


def _status(output: Output) -> dict | None:
    try:
        status = output_status(output)
    except FileNotFoundError:  # no plan.parquet (copied index only): the page says so
        return None
    return {k: status[k] for k in ("planned", "done", "failed", "pending", "shards")}
