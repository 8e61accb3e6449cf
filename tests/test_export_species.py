"""export's species columns and filters (absolute and relative to the class ceiling) and its mixing over
real soundscapes: real BirdNET scores (`verify OUT`'s sidecars), real recordings, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray import open_index, read_clip
from birdgen_ray.cli import app
from birdgen_ray.export import ExportConfig, ExportError, export_birdclef
from birdgen_ray.export.birdclef import verdict_matches
from birdgen_ray.io.audio import resample
from birdgen_ray.io.layout import committed_shard_ids
from birdgen_ray.io.storage import Output
from birdgen_ray.verify.existing import VerifyOutputConfig, verify_shard
from birdgen_ray.verify.thresholds import parse_species_threshold
from tests.made_outputs import null_output
from tests.plans import plan_table
from tests.real_audio import AUDIO, birdnet_or_skip, needs_real_audio

birdnet_or_skip()
runner = CliRunner()
# the class ceilings: one so low that half of it is below any clip, one no clip can reach half of
CEILINGS = {"woothr": 1e-9, "amered": 1.9}


@pytest.fixture(scope="module")
def verified(ray_local, tmp_path_factory):
    """A null-generator output of two BirdNET classes, scored afterwards by `verify OUT`'s shard step."""
    folder = tmp_path_factory.mktemp("species-export")
    plan = plan_table(10, labels=("woothr", "amered"), durations=(2.0,))
    names = {"woothr": "Hylocichla mustelina", "amered": "Setophaga ruticilla"}
    labels = plan["label"].to_pylist()
    plan = plan.append_column("scientific_name", pa.array([names[x] for x in labels]))
    plan = plan.append_column("reference_ceiling", pa.array([min(CEILINGS[x], 1.0) for x in labels], pa.float64()))
    out = null_output(folder, plan, shard_size=5)
    for shard_id in committed_shard_ids(Output(str(out))):
        verify_shard(VerifyOutputConfig(str(out)), shard_id)
    return out


def confidences(out) -> dict[str, float]:
    from birdgen_ray.verify.passing import species_columns

    table = species_columns(Output(str(out)), open_index(out))
    return dict(zip(table["clip_id"].to_pylist(), table["species_confidence"].to_pylist()))


def test_export_writes_the_species_columns_and_the_absolute_filter_keeps_what_reaches_it(verified, tmp_path):
    scores = confidences(verified)
    assert len(scores) == 10 and len(set(scores.values())) > 5
    cut = float(np.median(list(scores.values())))
    config = ExportConfig(species_threshold=parse_species_threshold(str(cut)))
    result = export_birdclef(verified, tmp_path / "a", config)
    meta = pd.read_csv(result.metadata_csv)
    assert set(meta["clip_id"]) == {c for c, v in scores.items() if v >= cut}
    for column in ("species_confidence", "species_top1", "verdict", "bandwidth_hz", "reference_ceiling"):
        assert column in meta.columns
    assert all(abs(meta.set_index("clip_id").loc[c, "species_confidence"] - scores[c]) < 1e-6 for c in meta["clip_id"])
    assert result.left_out == {f"were heard below species confidence {cut:g}": 10 - len(meta)}
    again = export_birdclef(verified, tmp_path / "b", ExportConfig(species_threshold=parse_species_threshold(str(cut))))
    assert pd.read_csv(again.metadata_csv).equals(meta)  # the same filter, the same rows


def test_the_relative_threshold_scales_each_class_ceiling(verified, tmp_path):
    index = open_index(verified).to_pylist()
    config = ExportConfig(species_threshold=parse_species_threshold("0.5x"))
    result = export_birdclef(verified, tmp_path / "rel", config)
    kept = set(pd.read_csv(result.metadata_csv)["clip_id"])
    # woothr's ceiling is 1e-9: half of it is below every clip; amered's is 1.0: half is 0.5, no null clip gets there
    assert kept == {r["clip_id"] for r in index if r["label"] == "woothr"}
    assert result.left_out == {"were heard below species confidence 0.5x of the class ceiling": 5}


def test_verdict_filter_and_cli_report_what_was_left_out(verified, tmp_path):
    assert verdict_matches("fail:too_quiet,species", "fail")
    assert verdict_matches("fail:too_quiet,species", "fail:species")
    assert not verdict_matches("pass", "fail") and not verdict_matches("fail:too_quiet", "fail:species")
    done = runner.invoke(app, ["export", str(verified), str(tmp_path / "x"), "--min-species-confidence", "0.5x"])
    assert done.exit_code == 0, done.output
    assert "exported 5 clips" in done.output
    assert "left out 5 that were heard below species confidence 0.5x" in done.output
    none = runner.invoke(app, ["export", str(verified), str(tmp_path / "y"), "--verdict", "fail"])
    assert none.exit_code == 1 and "all 10 selected clips had another verdict than 'fail'" in none.output
    bad = runner.invoke(app, ["export", str(verified), str(tmp_path / "z"), "--min-species-confidence", "high"])
    assert bad.exit_code == 2 and "--min-species-confidence must be" in bad.output


@needs_real_audio
def test_mixing_over_soundscapes_is_deterministic_per_seed_and_at_the_drawn_snr(verified, tmp_path):
    backgrounds = tmp_path / "soundscapes"
    backgrounds.mkdir()
    for name in ("birdnet-soundscape.ogg", "opensoundscape-great_plains_toad.wav"):
        (backgrounds / name).symlink_to(AUDIO / name)

    def mixed(dest, seed):
        config = ExportConfig(audio_format="wav", background=str(backgrounds), snr_db=(0.0, 10.0), seed=seed)
        return pd.read_csv(export_birdclef(verified, tmp_path / dest, config).metadata_csv).set_index("clip_id")

    first, again, other = mixed("s1", 1), mixed("s1b", 1), mixed("s2", 2)
    columns = ["background_file", "background_offset_s", "background_snr_db"]
    assert first[columns].equals(again[columns])
    for clip_id in first.index:  # the same seed, the same audio
        assert (tmp_path / "s1/train_audio" / first.loc[clip_id, "filename"]).read_bytes() == (
            tmp_path / "s1b/train_audio" / again.loc[clip_id, "filename"]
        ).read_bytes()
    assert not first[columns].equals(other[columns])
    assert len(set(first["background_file"])) == 2 and first["background_snr_db"].between(0, 10).all()

    for clip_id, row in first.iterrows():  # what was added is the background at the recorded SNR
        clean, rate = read_clip(verified, clip_id)
        clean = resample(clean, rate, 32_000)
        audio, _ = sf.read(tmp_path / "s1/train_audio" / row["filename"], dtype="float32")
        clean = clean[: audio.size]
        scale = float(np.dot(audio, clean) / np.dot(clean, clean))  # 1, or less where the sum was scaled down
        noise = audio - scale * clean
        snr = 10 * np.log10(np.mean((scale * clean) ** 2) / np.mean(noise**2))
        assert 0 < scale <= 1.001 and abs(snr - row["background_snr_db"]) < 1.0


def test_an_unreadable_background_is_named_before_any_work(verified, tmp_path):
    backgrounds = tmp_path / "bad"
    backgrounds.mkdir()
    (backgrounds / "broken.ogg").write_bytes(b"OggS not really")
    with pytest.raises(ExportError, match="broken.ogg: not a readable audio file"):
        export_birdclef(verified, tmp_path / "dest", ExportConfig(background=str(backgrounds)))
    assert not (tmp_path / "dest").exists()
    done = runner.invoke(app, ["export", str(verified), str(tmp_path / "d2"), "--background", str(backgrounds)])
    assert done.exit_code == 2 and "broken.ogg" in done.output and len(done.output.strip().splitlines()) == 1
    assert not (tmp_path / "d2").exists()


def test_the_report_shows_each_class_ceiling_and_says_plainly_that_no_threshold_was_set(verified, tmp_path):
    from birdgen_ray.report.build import ReportConfig, build_report
    from birdgen_ray.report.collect import collect

    species = collect(Output(str(verified)), per_class=0).species
    assert species.threshold is None and species.passed == 0 and species.confusions == []
    assert {g.name: g.ceiling for g in species.per_class} == {"amered": 1.0, "woothr": 1e-9}
    page = build_report(verified, tmp_path / "report", ReportConfig(per_class=1)).read_text()
    assert "No species threshold was set" in page and "verified clips pass" not in page
    assert '<th class="n">ceiling</th>' in page and '<td class="n">1.00</td>' in page
