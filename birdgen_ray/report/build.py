"""Write the QA report of an output: DEST/index.html, DEST/img/*.png and DEST/audio/*.wav.

All links in the page are relative, so DEST can be opened as a file, served over HTTP, zipped or
copied elsewhere as one folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdgen_ray.fields import listed, option
from birdgen_ray.index.reader import as_output, read_clip_bytes
from birdgen_ray.io.audio import decode_wav
from birdgen_ray.io.storage import Output, write_file_atomic
from birdgen_ray.report import charts
from birdgen_ray.report.collect import ReportData, collect
from birdgen_ray.report.page import render_page
from birdgen_ray.report.spectrograms import render_spectrogram

REPORT_DIR = "report"  # default place inside a local output
IMG_DIR = "img"
AUDIO_DIR = "audio"


@dataclass(frozen=True)
class ReportConfig:
    per_class: int = option(4, "Clips shown (spectrogram + player) per class.", min=0)
    seed: int = option(0, "Which clips are sampled: the same seed shows the same clips.")
    labels: tuple[str, ...] = listed(
        "Only this class (repeat, or comma-separate, for more).", metavar="LABEL", flags=("--label",)
    )


def default_dest(output: Output) -> Path:
    """OUT/report for a local output; object storage needs an explicit local folder."""
    if not output.is_local:
        raise ValueError(f"{output.uri} is object storage: pass --dest, a local folder for the report")
    return Path(output.path(REPORT_DIR))


def build_report(
    out: str | Output,
    dest: str | Path | None = None,
    config: ReportConfig = ReportConfig(),
    storage_options: dict[str, Any] | None = None,
) -> Path:
    """Build the report and return the path of its index.html."""
    output = as_output(out, storage_options)
    dest = Path(dest) if dest is not None else default_dest(output)
    data = collect(output, config.per_class, config.seed, list(config.labels))
    (dest / IMG_DIR).mkdir(parents=True, exist_ok=True)
    (dest / AUDIO_DIR).mkdir(parents=True, exist_ok=True)

    images = _charts(data, dest)
    clip_images, clip_audio = {}, {}
    for cls in data.classes:
        for row in cls.samples:
            clip_id = row["clip_id"]  # file-name safe by the plan's rules
            wav = read_clip_bytes(output, row)
            clip_audio[clip_id] = f"{AUDIO_DIR}/{clip_id}.wav"
            write_file_atomic(dest / clip_audio[clip_id], wav)  # the shard's own WAV bytes: plays as stored
            audio, rate = decode_wav(wav)
            clip_images[clip_id] = f"{IMG_DIR}/{clip_id}.png"
            render_spectrogram(audio, rate, dest / clip_images[clip_id], row.get("bandwidth_hz"))

    made_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    html = render_page(data, images, clip_images, clip_audio, config.per_class, made_at)
    page = dest / "index.html"
    write_file_atomic(page, html.encode("utf-8"))
    return page


def _charts(data: ReportData, dest: Path) -> dict[str, str | None]:
    # Chart names start with "_": clip ids start with a letter or digit, so they never collide.
    paths = {name: f"{IMG_DIR}/_{name}.png" for name in ("balance", "metrics", "verdicts", "stages")}
    charts.balance_chart(data.classes, dest / paths["balance"], data.real_known)
    charts.metric_histograms(data.metrics, data.thresholds, dest / paths["metrics"])
    charts.verdict_chart(dict(data.verdicts), dest / paths["verdicts"])
    if data.species is not None:
        paths["species"] = f"{IMG_DIR}/_species.png"
        charts.species_histogram(data.species.confidences, data.species.threshold, dest / paths["species"])
    stages = (data.summary or {}).get("stage_seconds") or {}
    if stages:
        charts.stage_chart(stages, dest / paths["stages"])
    else:
        paths["stages"] = None
    return paths
