"""`plan --references` with BirdNET: windows where the class sings, K per recording, cached scores, fallbacks."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.io.recordings import load_recording, loudest_window_start
from birdgen_ray.plan.build import PLAN_METADATA_KEY
from birdgen_ray.plan.validate import read_plan
from tests.real_audio import AUDIO, birdnet_or_skip, needs_real_audio
from tests.without_packages import cli_without

pytestmark = needs_real_audio
runner = CliRunner()
SOUNDSCAPE = AUDIO / "birdnet-soundscape.ogg"


@pytest.fixture(scope="module", autouse=True)
def birdnet():
    return birdnet_or_skip()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("BIRDGEN_CACHE_DIR", str(folder))
    return folder


def plan(tmp_path, classes: str, references: dict[str, list[str]], *extra):
    counts = tmp_path / "counts.csv"
    counts.write_text("label,count,scientific_name\n" + classes)
    table = tmp_path / "refs.csv"
    table.write_text("label,path\n" + "".join(f"{k},{p}\n" for k, paths in references.items() for p in paths))
    out = tmp_path / "plan.parquet"
    args = ["plan", str(counts), "--references", str(table), "-o", str(out), *map(str, extra)]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return out, result.output


def cut(name: str, start_s: float, seconds: float, folder) -> str:
    recording = load_recording(str(AUDIO / name), rate=32_000)
    start = int(start_s * recording.rate)
    path = folder / f"{name.split('.')[0]}-{start_s:g}.wav"
    path.write_bytes(encode_wav(recording.audio[start : start + int(seconds * recording.rate)], recording.rate))
    return str(path)


def test_the_soundscape_gives_its_house_finch_window_not_the_loudest_one(tmp_path, cache, monkeypatch):
    classes = "houfin,1,Haemorhous mexicanus\n"
    out, output = plan(tmp_path, classes, {"houfin": [str(SOUNDSCAPE)]}, "--target", 5, "--duration", 3)
    rows = read_plan(str(out)).to_pylist()
    first = rows[0]
    assert first["reference_start_s"] == 9.0  # the House Finch window, 9-12 s
    assert 0.5 <= first["reference_confidence"] <= 0.7
    loudest = loudest_window_start(load_recording(str(SOUNDSCAPE)).audio, 16_000, 3.0)
    assert abs(loudest - 9.0) > 3  # energy alone would have picked another part of the file
    assert all(r["reference_confidence"] >= 0.3 for r in rows)  # every row on a qualifying window
    assert len({r["reference_ceiling"] for r in rows}) == 1 and 0 < first["reference_ceiling"] <= 1
    assert "houfin: birdnet-soundscape.ogg 9-12 s 0.6" in output
    meta = json.loads(pq.read_schema(out).metadata[PLAN_METADATA_KEY])["references"]
    assert meta["window_choice"] == "birdnet" and meta["reference_ceiling"]["houfin"] == first["reference_ceiling"]

    # a rerun reads the scores back by the file's SHA-256: BirdNET is not run again, the plan is the same
    assert len(list((cache / "reference-windows").glob("*.npz"))) == 1
    before = out.read_bytes()

    def no_model(*_args, **_kwargs):
        raise AssertionError("BirdNET ran although the scores were cached")

    monkeypatch.setattr("birdgen_ray.plan.reference_windows.load_birdnet", no_model)
    out, _ = plan(tmp_path, classes, {"houfin": [str(SOUNDSCAPE)]}, "--target", 5, "--duration", 3)
    assert out.read_bytes() == before


def test_a_class_with_two_recordings_gets_windows_from_both(tmp_path, cache):
    first = cut("opensoundscape-1min.wav", 0.0, 30.0, tmp_path)
    second = cut("opensoundscape-1min.wav", 30.0, 30.0, tmp_path)
    out, output = plan(
        tmp_path, "woothr,2,Hylocichla mustelina\n", {"woothr": [first, second]}, "--target", 8, "--duration", 5
    )
    rows = read_plan(str(out)).to_pylist()
    assert {r["reference"] for r in rows} == {first, second}
    assert [r["reference"] for r in rows[:2]] == sorted([first, second])  # round-robin: recordings first
    pairs = {(r["reference"], r["reference_start_s"]) for r in rows}
    assert len(pairs) > 2  # more than one window per recording
    assert all(len({s for ref, s in pairs if ref == path}) <= 3 for path in (first, second))  # K = 3
    assert all(r["reference_confidence"] >= 0.3 for r in rows)
    confidences = [r["reference_confidence"] for r in rows[:2]], [r["reference_confidence"] for r in rows[2:4]]
    assert min(confidences[0]) >= max(confidences[1]) or all(
        a >= b for a, b in zip(*confidences)
    )  # each recording's best window before its second
    assert output.count("woothr:") == 1


def test_a_recording_without_the_species_falls_back_to_energy_with_one_warning(tmp_path, cache):
    toad = str(AUDIO / "opensoundscape-great_plains_toad.wav")
    out, output = plan(tmp_path, "houfin,1,Haemorhous mexicanus\n", {"houfin": [str(SOUNDSCAPE), toad]}, "--target", 6)
    rows = read_plan(str(out)).to_pylist()
    toad_rows = [r for r in rows if r["reference"] == toad]
    recording = load_recording(toad)
    assert toad_rows and all(r["reference_confidence"] is None for r in toad_rows)
    assert {r["reference_start_s"] for r in toad_rows} == {loudest_window_start(recording.audio, recording.rate, 5.0)}
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and toad in warnings[0]


def test_a_higher_floor_and_one_window_per_recording(tmp_path, cache):
    out, _ = plan(
        tmp_path,
        "houfin,1,Haemorhous mexicanus\n",
        {"houfin": [str(SOUNDSCAPE)]},
        "--target",
        4,
        "--windows-per-recording",
        1,
        "--min-reference-confidence",
        0.9,
    )
    rows = read_plan(str(out)).to_pylist()
    assert all(r["reference_confidence"] is None for r in rows)  # 0.60 is below 0.9: energy


def test_without_the_extra_windows_are_picked_by_energy_and_the_summary_says_so(tmp_path):
    counts = tmp_path / "counts.csv"
    counts.write_text("label,count,scientific_name\nhoufin,1,Haemorhous mexicanus\n")
    table = tmp_path / "refs.csv"
    table.write_text(f"label,path\nhoufin,{SOUNDSCAPE}\n")
    out = tmp_path / "plan.parquet"
    argv = ["plan", str(counts), "--target", "3", "--references", str(table), "-o", str(out)]
    done = cli_without({"ai_edge_litert"}, argv)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "picked by loudness" in line]
    assert len(lines) == 1 and "birdnet extra is not installed" in lines[0]
    rows = read_plan(str(out)).to_pylist()
    recording = load_recording(str(SOUNDSCAPE))
    assert {r["reference_start_s"] for r in rows} == {loudest_window_start(recording.audio, recording.rate, 5.0)}
    assert all(r["reference_confidence"] is None and r["reference_ceiling"] is None for r in rows)
