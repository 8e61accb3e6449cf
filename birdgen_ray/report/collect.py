"""Gather what the report shows from an output alone: index, summary, status, a sample per class."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from birdgen_ray.index.reader import open_index, select_labels
from birdgen_ray.index.run_status import productive_run
from birdgen_ray.index.schema import METRIC_COLUMNS
from birdgen_ray.index.status import output_status
from birdgen_ray.io.layout import SUMMARY_FILE
from birdgen_ray.io.storage import Output
from birdgen_ray.report.species import SpeciesReport, collect_species

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
    species: SpeciesReport | None = None  # BirdNET's verdicts (submit --verify or verify OUT); None: not verified


def collect(output: Output, per_class: int = 4, seed: int = 0, labels: list[str] | None = None) -> ReportData:
    """Read the output; pick `per_class` clips per class, the same ones every time for the same seed."""
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    index = open_index(output)
    if labels:
        index = select_labels(index, labels, output.uri)
    # Column-wise: an index of a million clips is never turned into a million dicts.
    index = index.sort_by([("label", "ascending"), ("clip_id", "ascending")])
    label_column = index["label"].to_pylist()
    verdict_column = index["verdict"].to_pylist()
    size_column = index["size"].to_pylist()
    real_known = "real_count" in index.column_names and index["real_count"].null_count == 0

    classes = []
    for number, (label, start, end) in enumerate(_runs(label_column)):
        first = index.slice(start, 1).to_pylist()[0]
        passed = sum(1 for v in verdict_column[start:end] if v == "pass")
        rng = random.Random(f"{seed}:{label}")  # str seeds are stable across runs and machines
        playable = [i for i, size in zip(range(start, end), size_column[start:end]) if size]  # audio stored
        picked = sorted(rng.sample(playable, min(per_class, len(playable))))
        classes.append(
            ClassSummary(
                label=label,
                anchor=f"class-{number}",
                common_name=first.get("common_name") or "",
                scientific_name=first.get("scientific_name") or "",
                taxon_class=first.get("taxon_class") or "",
                real=int(first["real_count"]) if real_known else None,
                rule=first.get("rule") or "",
                synthetic=end - start,
                passed=passed,
                failed=end - start - passed,
                samples=index.take(pa.array(picked, pa.int64())).to_pylist(),
            )
        )

    verdicts: Counter = Counter()
    for verdict, count in Counter(verdict_column).items():
        reasons = ["pass"] if verdict == "pass" else [f"fail:{r}" for r in verdict.split(":", 1)[-1].split(",")]
        for reason in reasons:
            verdicts[reason] += count
    metrics = {}
    for name in METRIC_COLUMNS:
        values = index[name].to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
        finite = values[np.isfinite(values)]
        if finite.size:
            metrics[name] = finite.tolist()
    settings = _settings(index["settings"][0].as_py() if index.num_rows else None)
    quality = settings.get("quality", {})
    thresholds = {m: quality[f] for m, f in GATE_FIELDS.items() if quality.get(f) is not None}
    return ReportData(
        out=output.uri,
        clips=index.num_rows,
        classes=classes,
        real_known=real_known,
        verdicts=verdicts,
        metrics=metrics,
        thresholds=thresholds,
        model_ids=sorted(pc.unique(index["model_id"]).to_pylist()),
        settings=settings,
        # the last run that generated clips: a no-op rerun must not show 0 clips/s
        summary=productive_run(output.read_json(SUMMARY_FILE)) if output.exists(SUMMARY_FILE) else None,
        status=_status(output),
        species=collect_species(output, index, settings),
    )


def _runs(values: list[str]):
    """(value, start, end) for each run of equal values in a sorted list."""
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            yield values[start], start, i
            start = i


def _settings(text: str | None) -> dict:
    try:
        return json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}


def _status(output: Output) -> dict | None:
    try:
        status = output_status(output)
    except FileNotFoundError:  # no plan.parquet (copied index only): the page says so
        return None
    return {k: status[k] for k in ("planned", "done", "failed", "pending", "shards")}
