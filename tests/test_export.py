"""`birdgen-ray export --format birdclef`: real files decoded back, and the CSV next to real BirdCLEF metadata."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray import open_index, read_clip
from birdgen_ray.birdclef import LAYOUTS
from birdgen_ray.cli import app
from birdgen_ray.config import GenerationConfig, QualityThresholds
from birdgen_ray.export import ExportConfig, ExportError, export_birdclef
from birdgen_ray.export.birdclef import EXTRA_COLUMNS
from birdgen_ray.plan.metadata import read_classes
from tests.example_data import example_classes, write_recordings
from tests.made_outputs import birdclef_plan, null_output
from tests.plans import plan_table


@pytest.fixture(scope="module")
def birdclef_run(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """(output, the real train_metadata.csv its plan was made from): 5 + 5 + 3 synthetic clips."""
    folder = tmp_path_factory.mktemp("birdclef")
    plan = birdclef_plan(folder, n_classes=3, target=6)
    return null_output(folder, plan), folder / "train_metadata.csv"


def test_export_round_trip_decodes_at_32k_with_the_clips_audio(birdclef_run, tmp_path):
    out, _ = birdclef_run
    result = export_birdclef(out, tmp_path / "syn")
    index = {r["clip_id"]: r for r in open_index(out).to_pylist()}
    meta = pd.read_csv(result.metadata_csv)
    assert result.metadata_csv == tmp_path / "syn" / "train_metadata.csv"
    assert result.exported == len(meta) == len(index) == 13 and result.skipped_failed == 0
    assert sorted(meta["clip_id"]) == sorted(index)

    for rec in meta.itertuples():
        row = index[rec.clip_id]
        assert rec.filename == f"{row['label']}/{row['clip_id']}.ogg" and rec.primary_label == row["label"]
        path = tmp_path / "syn" / "train_audio" / rec.filename
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("OGG", "VORBIS", 32_000, 1)
        assert info.frames == row["num_samples"] == round(row["duration_s"] * 32_000)
        decoded, rate = sf.read(path, dtype="float32")
        original, _ = read_clip(out, row)
        # Vorbis is lossy: the same sound, not the same samples
        assert rate == 32_000 and np.corrcoef(decoded, original)[0, 1] > 0.95
        assert rec.prompt == row["prompt"] and rec.seed == row["seed"] and rec.source == "synthetic"
        assert rec.type == f"['{row['call_type']}']"  # BirdCLEF's list literal, from the plan


def test_csv_concatenates_with_the_real_train_metadata(birdclef_run, tmp_path):
    out, real_csv = birdclef_run
    result = export_birdclef(out, tmp_path / "syn", ExportConfig(license="CC BY-NC-SA 4.0"))
    real = pd.read_csv(real_csv)
    synthetic = pd.read_csv(result.metadata_csv)
    assert list(synthetic.columns) == list(real.columns) + EXTRA_COLUMNS

    both = pd.concat([real, synthetic], ignore_index=True)
    assert list(both.columns) == list(synthetic.columns) and len(both) == len(real) + 13
    for column in real.columns:  # the real file's types survive the concat (no object/float mix-ups)
        assert both[column].dtype == real[column].dtype, column
    assert (both["source"] == "synthetic").sum() == 13 and both["source"].isna().sum() == len(real)
    assert set(both.loc[both["source"] == "synthetic", "license"]) == {"CC BY-NC-SA 4.0"}

    # the merged file is still BirdCLEF metadata: the planner reads it, and counts real + synthetic
    merged = tmp_path / "merged.csv"
    both.to_csv(merged, index=False)
    counts = {c.label: c.real_count for c in read_classes(merged)}
    assert counts == dict(Counter(real["primary_label"]) + Counter(synthetic["primary_label"]))
    assert set(counts.values()) == {6}  # the plan's --target


def test_2025_layout_marks_collection_and_concatenates_with_train_csv(birdclef_run, tmp_path):
    out, _ = birdclef_run
    real_csv = write_recordings(tmp_path / "train.csv", example_classes(3, high=3), "2025")
    result = export_birdclef(out, tmp_path / "syn", ExportConfig(layout="2025"))
    assert result.metadata_csv.name == "train.csv"
    real, synthetic = pd.read_csv(real_csv), pd.read_csv(result.metadata_csv)
    assert list(synthetic.columns) == LAYOUTS["2025"] + EXTRA_COLUMNS
    both = pd.concat([real, synthetic], ignore_index=True)
    assert Counter(both["collection"])["synthetic"] == 13 and set(real["collection"]) <= {"XC", "iNat", "CSA"}
    assert all(both[c].dtype == real[c].dtype for c in real.columns)


@pytest.mark.parametrize("audio_format, fmt", [("flac", "FLAC"), ("wav", "WAV")])
def test_16k_output_is_resampled_to_32k_in_each_format(ray_local, tmp_path, audio_format, fmt):
    out = null_output(tmp_path, plan_table(3), generation=GenerationConfig(output_sample_rate=16_000))
    result = export_birdclef(out, tmp_path / "syn", ExportConfig(audio_format=audio_format))
    for rec in pd.read_csv(result.metadata_csv).itertuples():
        info = sf.info(tmp_path / "syn" / "train_audio" / rec.filename)
        assert rec.filename.endswith(f".{audio_format}")
        assert (info.format, info.samplerate) == (fmt, 32_000)
        assert info.frames == round(rec.duration_s * 32_000)


def test_clips_that_failed_the_gate_stay_out_unless_asked(birdclef_run, ray_local, tmp_path):
    out, _ = birdclef_run
    peaks = open_index(out)["peak_dbfs"].to_pylist()
    # the null generator makes the same audio for the same plan: a gate at the median fails about half
    gate = QualityThresholds(min_peak_dbfs=statistics.median(peaks), max_retries=0)
    gated = null_output(
        tmp_path,
        open_index(out).select(["clip_id", "label", "prompt", "seed", "duration_s", "call_type"]),
        generation=GenerationConfig(quality=gate),
    )
    verdicts = dict(zip(*open_index(gated).select(["clip_id", "verdict"]).to_pydict().values()))
    passed = {c for c, v in verdicts.items() if v == "pass"}
    assert 0 < len(passed) < len(verdicts)

    default = export_birdclef(gated, tmp_path / "a")
    assert set(pd.read_csv(default.metadata_csv)["clip_id"]) == passed
    assert default.skipped_failed == len(verdicts) - len(passed)
    assert {p.stem for p in (tmp_path / "a" / "train_audio").rglob("*.ogg")} == passed

    everything = export_birdclef(gated, tmp_path / "b", ExportConfig(include_failed=True))
    meta = pd.read_csv(everything.metadata_csv)
    assert set(meta["clip_id"]) == set(verdicts) and set(meta["verdict"]) - {"pass"} == {"fail:too_quiet"}


def test_unsafe_labels_and_bad_options_are_refused_by_name(ray_local, tmp_path):
    out = null_output(tmp_path, plan_table(3).set_column(0, "label", pa.array(["ok", "up", "ok"])))
    # plans refuse such labels; an index written by an older version or edited by hand may have one
    index = pq.read_table(out / "index.parquet")
    labels = ["../up" if label == "up" else label for label in index["label"].to_pylist()]
    edited = index.set_column(index.schema.get_field_index("label"), "label", pa.array(labels))
    # as an editor that does not keep our footer metadata writes it (with it, the stale content
    # checksum would make readers rebuild the index from the shard indexes instead)
    pq.write_table(edited.replace_schema_metadata(None), out / "index.parquet")
    with pytest.raises(ExportError, match=r"column 'label'.*'\.\./up'"):
        export_birdclef(out, tmp_path / "syn")
    assert not (tmp_path / "up").exists()
    with pytest.raises(ExportError, match="audio format"):
        ExportConfig(audio_format="mp3")
    with pytest.raises(ExportError, match="--include-failed means --verdict any"):
        ExportConfig(include_failed=True, verdict="fail:species")
    with pytest.raises(ExportError, match="labels not in the index.*nosuch"):
        export_birdclef(out, tmp_path / "syn", ExportConfig(labels=("nosuch",)))


def test_cli_export(birdclef_run, tmp_path):
    out, _ = birdclef_run
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(out), "--format", "birdclef", str(tmp_path / "syn")])
    assert result.exit_code == 0, result.output
    assert "exported 13 clips" in result.output
    assert len(list((tmp_path / "syn" / "train_audio").rglob("*.ogg"))) == 13

    labels = sorted({r["label"] for r in open_index(out).to_pylist()})
    assert len(labels) == 3
    for label_args in (["--label", f"{labels[0]}, {labels[1]}"], ["--label", labels[0], "--label", labels[1]]):
        dest = tmp_path / f"some-{len(label_args)}"  # comma-separated or repeated: the same two classes
        picked = runner.invoke(app, ["export", str(out), "--format", "birdclef", str(dest), *label_args])
        assert picked.exit_code == 0, picked.output
        assert sorted(p.name for p in (dest / "train_audio").iterdir()) == labels[:2]

    rated = runner.invoke(app, ["export", str(out), str(tmp_path / "rated"), "--rating", "4"])
    assert rated.exit_code == 0, rated.output
    assert set(pd.read_csv(tmp_path / "rated" / "train_metadata.csv")["rating"]) == {4.0}
    assert runner.invoke(app, ["export", str(out), str(tmp_path / "r6"), "--rating", "6"]).exit_code == 2

    bad = runner.invoke(app, ["export", str(out), "--format", "kaggle", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--format" in bad.output and "kaggle" in bad.output
    missing = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--format", "birdclef", str(tmp_path / "y")])
    assert missing.exit_code == 2 and "no index" in missing.output


def test_a_species_threshold_on_an_output_never_verified_says_so(birdclef_run, tmp_path):
    out, _ = birdclef_run  # made without --verify: no clip has a species score
    result = CliRunner().invoke(app, ["export", str(out), str(tmp_path / "e"), "--min-species-confidence", "0.5"])
    assert result.exit_code == 2 and "has a species score" in result.output and "birdgen-ray verify" in result.output
    assert not (tmp_path / "e").exists()
