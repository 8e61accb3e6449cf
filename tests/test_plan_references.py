"""`plan --references`: round-robin recordings, loudest windows, strengths, fallbacks, bad files, no change without."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.io.audio import encode_wav
from birdgen_ray.io.recordings import load_recording, loudest_window_start
from birdgen_ray.plan.build import PLAN_METADATA_KEY
from birdgen_ray.plan.references import parse_strength, row_strength
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.schedule.resume import check_unchanged
from tests.real_audio import AUDIO, needs_real_audio

runner = CliRunner()
# The plan below as written before references existed (pyarrow as installed in the venv)
# sha256 of this test's plan as written by 4c5bbdd, the last commit before references (the lease work
# there began writing Parquet page checksums, which changed the bytes of every plan once); re-pinned
# when the prompts changed on purpose (call types as sound words, settings by order and family, prompt
# styles and the prompt_style column), which changed every plan's prompts once more; and re-pinned when
# the shipped templates grew (orders, genera, regions: #24), which changed the templates' sha256 in the footer;
# and re-pinned when plans gained their content checksum (plan format 2, #26), a footer key of every plan.
PLAN_BEFORE_REFERENCES_SHA256 = "2efb2c8266576037f1fcdf8aae2195173feb215bdfcf27e1c82516c4f09e116d"


def run(*args):
    return runner.invoke(app, ["plan", *map(str, args)], env={"COLUMNS": "120"})


@pytest.fixture
def counts(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("label,count\nalpha,1\nbeta,2\ngamma,3\n")
    return path


def cut(name: str, start_s: float, seconds: float) -> bytes:
    """A few seconds of a real recording as WAV (small files for a train_audio tree in tmp)."""
    recording = load_recording(str(AUDIO / name))
    start = int(start_s * recording.rate)
    return encode_wav(recording.audio[start : start + int(seconds * recording.rate)], recording.rate)


@pytest.fixture
def train_audio(tmp_path):
    root = tmp_path / "birdclef" / "train_audio"
    files = {
        "alpha/XC1.wav": cut("scikit-maad-spinetail.wav", 0.0, 6.0),
        "beta/XC2.wav": cut("opensoundscape-birds_10s.wav", 0.0, 5.0),
        "beta/XC3.wav": cut("opensoundscape-birds_10s.wav", 5.0, 4.0),
        "beta/notes.txt": b"not audio: ignored",
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


def test_plan_without_references_is_byte_for_byte_what_it_was(counts, tmp_path):
    out = tmp_path / "plan.parquet"
    assert run(counts, "--target", 5, "--seed", 3, "--duration", 2, "-o", out).exit_code == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == PLAN_BEFORE_REFERENCES_SHA256
    assert "reference" not in pq.read_schema(out).names and "references" not in json.loads(
        pq.read_schema(out).metadata[PLAN_METADATA_KEY]
    )


@needs_real_audio
@pytest.mark.parametrize("given", ["train_audio", "its parent"])
def test_references_round_robin_with_loudest_windows_and_text_only_fallback(counts, train_audio, tmp_path, given):
    out = tmp_path / "plan.parquet"
    root = train_audio if given == "train_audio" else train_audio.parent
    result = run(
        counts, "--target", 5, "--seed", 3, "--duration", 2, "--references", root, "--strength", "0.3:0.7", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert "1 without recordings fall back to text-only: gamma" in result.output

    plan = read_plan(str(out)).to_pylist()
    by_label = {}
    for row in plan:
        by_label.setdefault(row["label"], []).append(row)
    assert [r["reference"] for r in by_label["alpha"]] == ["alpha/XC1.wav"] * 4
    assert [r["reference"] for r in by_label["beta"]] == ["beta/XC2.wav", "beta/XC3.wav", "beta/XC2.wav"]
    assert all(r["reference"] is None and r["strength"] is None for r in by_label["gamma"])  # text-only rows
    for row in by_label["alpha"] + by_label["beta"]:
        assert row["reference_root"] == str(train_audio)
        recording = load_recording(str(train_audio / row["reference"]))
        assert row["reference_start_s"] == loudest_window_start(recording.audio, recording.rate, 2.0)
        assert 0.3 <= row["strength"] <= 0.7 and row["strength"] == row_strength(
            (0.3, 0.7), 3, row["label"], row["take"]
        )
    assert len({r["strength"] for r in plan if r["strength"] is not None}) > 3  # sampled per row
    again = tmp_path / "again.parquet"
    run(counts, "--target", 5, "--seed", 3, "--duration", 2, "--references", root, "--strength", "0.3:0.7", "-o", again)
    assert again.read_bytes() == out.read_bytes()


@needs_real_audio
def test_label_path_table_and_a_single_strength(counts, train_audio, tmp_path):
    table = tmp_path / "refs.csv"
    table.write_text(f"label,path\ngamma,{train_audio / 'beta/XC3.wav'}\nalpha,birdclef/train_audio/alpha/XC1.wav\n")
    out = tmp_path / "plan.parquet"
    result = run(counts, "--target", 5, "--duration", 2, "--references", table, "--strength", "0.5", "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_plan(str(out)).to_pylist()
    assert {r["label"]: r["reference"] for r in rows} == {
        "alpha": "birdclef/train_audio/alpha/XC1.wav",
        "beta": None,
        "gamma": str(train_audio / "beta/XC3.wav"),
    }
    assert {r["strength"] for r in rows if r["reference"]} == {0.5}


@needs_real_audio
def test_bad_references_are_all_named_with_their_paths(counts, train_audio, tmp_path):
    (train_audio / "beta" / "XC4.ogg").write_bytes(b"OggS but not really")
    (train_audio / "alpha" / "XC0.wav").write_bytes(encode_wav(np.zeros(16_000, np.float32), 16_000))
    (train_audio / "gamma").mkdir()
    (train_audio / "gamma" / "XC5.wav").write_bytes(cut("opensoundscape-birds_10s.wav", 1.0, 0.3))
    out = tmp_path / "plan.parquet"
    result = run(counts, "--target", 5, "--duration", 2, "--references", train_audio, "-o", out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{train_audio / 'beta' / 'XC4.ogg'}: not a readable audio file" in result.output
    assert f"{train_audio / 'alpha' / 'XC0.wav'}: silent" in result.output
    assert f"{train_audio / 'gamma' / 'XC5.wav'}: 0.30 s long, shorter than 0.5 s" in result.output
    assert not out.exists()


def test_strength_option_is_checked():
    assert parse_strength("0.25") == (0.25, 0.25) and parse_strength("0:1") == (0.0, 1.0)
    for text in ("1.5", "0.7:0.3", "a", "0.1:0.2:0.3"):
        with pytest.raises(ValueError, match="--strength must be"):
            parse_strength(text)


@needs_real_audio
def test_a_reference_row_is_another_clip_than_the_same_row_without_it(counts, train_audio, tmp_path):
    """Its clip_id keys on the recording, window and strength, and a rerun refuses a changed strength."""
    text_only, with_refs = tmp_path / "text.parquet", tmp_path / "refs.parquet"
    assert run(counts, "--target", 5, "--seed", 3, "--duration", 2, "-o", text_only).exit_code == 0
    made = run(counts, "--target", 5, "--seed", 3, "--duration", 2, "--references", train_audio, "-o", with_refs)
    assert made.exit_code == 0, made.output
    before = {r["label"] + str(r["take"]): r["clip_id"] for r in read_plan(str(text_only)).to_pylist()}
    rows = read_plan(str(with_refs)).to_pylist()
    for row in rows:  # gamma has no recordings: its rows keep their text-only ids
        assert (row["clip_id"] == before[row["label"] + str(row["take"])]) == (row["reference"] is None)
    assert len({r["clip_id"] for r in rows}) == len(rows)

    committed = pa.Table.from_pylist(rows)
    check_unchanged(pa.Table.from_pylist(rows), committed, "plan", "out")  # the same plan: nothing to refuse
    changed = [dict(r, strength=0.9) if r["reference"] else r for r in rows]
    with pytest.raises(PlanError, match="column 'strength': differs"):
        check_unchanged(pa.Table.from_pylist(changed), committed, "plan", "out")
