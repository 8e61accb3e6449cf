"""`birdgen-ray evaluate` end to end on real recordings (../shared/audio cut into 3 s windows, labelled with
the species BirdNET finds in them), with the real BirdNET model, real outputs and the real CLI.

The harness must tell help from harm, and catch leaks:
  (a) positive control, not leaked: augmented held-in windows (same species, never tested, no overlap
      with a tested window) raise the left-out (one-recording) classes, and beat the matched baselines
  (b) negative control: the null generator's clips (noise and chirps) show no gain, and are separable
      from real at AUC > 0.9
  (c) a real set whose recordings share windows (overlapping cuts) fails the protocol check
  (d) leakage control: copies of the real recordings, stored under other paths, are withheld from the
      folds that test them (by their bytes' SHA-256) and counted; without a hash, as near-copies
  (f) the second model (a log-mel CNN from scratch, independent of BirdNET) has a row for each of its
      variants, is deterministic per seed, and never shows the noise control as a gain
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.evaluate import EvaluateConfig
from birdgen_ray.evaluate.pipeline import evaluate
from birdgen_ray.evaluate.protocol import ProtocolError
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_SAMPLES
from tests.made_outputs import null_output
from tests.real_audio import birdnet_or_skip, needs_real_audio
from tests.test_report import chromium, serve  # noqa: F401  (the report's browser fixtures)

pytestmark = [needs_real_audio, pytest.mark.slow]  # BirdNET on real recordings


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tests.evaluation_data import build

    return build(birdnet_or_skip(), tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def synthetic(data, ray_local, tmp_path_factory):
    """Two real outputs: augmented held-in windows, and a small null-generator submit (3 s clips)."""
    from tests.evaluation_data import write_output

    folder = tmp_path_factory.mktemp("synthetic")
    held_in = write_output(folder / "held-in", [w.label for w in data.held_in], [w.audio for w in data.held_in])
    labels = sorted(data.counts)
    n = 4 * len(labels)
    plan = pa.table(
        {
            "label": [labels[i % len(labels)] for i in range(n)],
            "prompt": [f"{labels[i % len(labels)]} song, take {i}" for i in range(n)],
            "seed": pa.array(range(n), pa.int64()),
            "duration_s": [3.0] * n,
        }
    )
    noise = null_output(folder / "noise", plan)
    return held_in, noise


@pytest.fixture(scope="module")
def evaluated(data, synthetic, tmp_path_factory) -> tuple[Path, dict]:
    """One run of the real CLI on both outputs, with --match-bandwidth (both bands reported)."""
    held_in, noise = synthetic
    out = tmp_path_factory.mktemp("eval")
    args = ["evaluate", "--real", str(data.real_table), "--synthetic", str(held_in), "--synthetic", str(noise)]
    args += ["--out", str(out), "--bootstrap", "100", "--ratio", "1", "--ratio", "4", "--match-bandwidth"]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "macro ROC-AUC" in result.output and "wrote" in result.output
    return out, json.loads((out / "evaluation.json").read_text())


def _names(result: dict) -> tuple[str, str]:
    names = [s["name"] for s in result["synthetic"]]
    return f"{names[0]}: all", f"{names[1]}: all"


def test_protocol_is_grouped_and_leaves_one_recording_classes_out(data, evaluated):
    _, result = evaluated
    protocol = result["protocol"]
    assert protocol["grouped"] and protocol["every_recording_tested_once"] and protocol["duplicate_window_pairs"] == 0
    left_out = {c["label"] for c in result["classes"] if c["left_out"]}
    assert left_out == {label for label, n in data.counts.items() if n == 1} and len(left_out) >= 3
    assert {c["bin"] for c in result["classes"] if c["left_out"]} == {"1"}
    assert len(result["bands"]) == 2  # full band and real low-passed to the synthetic's 8 kHz


def test_a_informative_synthetic_raises_left_out_classes_and_b_noise_does_not(evaluated):
    _, result = evaluated
    held_in, noise = _names(result)
    # the positive control is not leaked: nothing of it is made from, or a near-copy of, a tested recording
    assert result["leakage"]["withheld_by_reference"] == 0
    assert not [n for n in result["leakage"]["near_copies"] if n["output"] == held_in.split(":")[0]]
    assert result["protocol"]["seeds"] == 3 and result["protocol"]["bootstrap_unit"] == "group"
    for band, data in result["bands"].items():
        variants = data["variants"]
        # real only cannot learn a class it never trained on: chance on the left-out row
        assert variants["real only"]["left_out"]["roc_auc"]["value"] == pytest.approx(0.5)
        gain = variants[held_in]["left_out"]
        assert gain["roc_auc"]["difference"] > 0.15 and gain["roc_auc"]["verdict"] == "gain", band
        assert gain["cmap"]["difference"] > 0, band
        # the matched real baselines cannot add rows to classes without real training audio
        assert gain["roc_auc"]["vs_baseline_verdict"] == "gain", band
        harm = variants[noise]["left_out"]
        assert harm["roc_auc"]["difference"] < gain["roc_auc"]["difference"] - 0.1, band
        assert harm["roc_auc"]["verdict"] != "gain", band  # no demonstrable gain from noise
        assert harm["cmap"]["difference"] < gain["cmap"]["difference"], band
        assert variants[noise]["macro"]["roc_auc"]["vs_baseline_verdict"] != "gain", band
        similarity = data["similarity"]
        assert similarity[noise.split(":")[0]]["separability_auc"] > 0.9, band
        assert (
            similarity[held_in.split(":")[0]]["separability_auc"] < similarity[noise.split(":")[0]]["separability_auc"]
        )


def test_c_overlapping_cuts_of_one_recording_fail_the_protocol_check(data, synthetic, tmp_path):
    """6 s cuts with a 3 s hop: neighbours share a window, so some fold has the same audio on both sides."""
    source = [w for w in data.real if w.label == data.counts.most_common(1)[0][0]][:10]
    table = tmp_path / "leaky.csv"
    rows = [(w.label, f) for w, f in zip(data.real, _copy_real(data, tmp_path)) if w.label != source[0].label]
    for i in range(len(source) - 1):
        path = tmp_path / f"overlap-{i}.wav"
        sf.write(path, np.concatenate([source[i].audio, source[i + 1].audio]), SAMPLE_RATE, subtype="PCM_16")
        rows.append((source[i].label, path.name))
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows([("label", "path"), *rows])
    config = EvaluateConfig(real=str(table), synthetic=(str(synthetic[0]),), out=tmp_path / "eval", bootstrap=0,
                            progress=False)  # fmt: skip
    with pytest.raises(ProtocolError, match="share audio"):
        evaluate(config)
    assert len(source[0].audio) == WINDOW_SAMPLES


def _copy_real(data, folder: Path) -> list[str]:
    names = []
    for row in list(csv.DictReader(open(data.real_table))):
        target = folder / Path(row["path"]).name
        target.write_bytes((data.real_table.parent / row["path"]).read_bytes())
        names.append(target.name)
    return names


def test_d_copies_of_test_recordings_under_other_paths_are_withheld_and_counted(data, tmp_path):
    """The leakage control. 'copied' names each real recording by another path (elsewhere/NNN.wav, a
    byte copy) and records its SHA-256, as the engine does; 'pirated' holds the same audio with no
    reference at all. Every clip of both must be withheld from the one fold that tests its recording."""
    import hashlib

    from tests.evaluation_data import write_output

    rows = list(csv.DictReader(open(data.real_table)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hashes, references = [], []
    for row in rows:
        content = (data.real_table.parent / row["path"]).read_bytes()
        (elsewhere / f"copy-{Path(row['path']).name}").write_bytes(content)
        hashes.append(hashlib.sha256(content).hexdigest())
        references.append(f"copy-{Path(row['path']).name}")
    labels, audio = [w.label for w in data.real], [w.audio for w in data.real]
    copied = write_output(tmp_path / "copied", labels, audio, reference_sha256=hashes, augmented=False,
                          reference=references, reference_root=[str(elsewhere)] * len(rows))  # fmt: skip
    pirated = write_output(tmp_path / "pirated", labels, audio, augmented=False)
    config = EvaluateConfig(real=str(data.real_table), synthetic=(str(copied), str(pirated)), out=tmp_path / "eval",
                            bootstrap=0, seeds=1, ratios=(1.0,), progress=False)  # fmt: skip
    result = evaluate(config)
    leakage = result["leakage"]
    assert not set(references) & {row["path"] for row in rows}  # the paths differ: only the bytes match
    assert leakage["withheld_by_reference"] == len(rows)  # every clip made from a recording, once
    assert sum(f["withheld_by_reference"] for f in leakage["folds"]) == len(rows)  # in exactly one fold each
    assert leakage["withheld_near_copies"] == len(rows)  # the pirated copies, by their audio
    pirated_listed = {n["clip_id"] for n in leakage["near_copies"] if n["output"] == "pirated"}
    assert len(pirated_listed) == len(rows) and all(n["cosine"] >= 0.995 for n in leakage["near_copies"])
    # withheld, a copy cannot teach a left-out class its own test recording (leaked, it would score ~1.0)
    left_out = result["bands"]["full"]["variants"]["copied: all"]["left_out"]["roc_auc"]
    assert left_out["value"] <= 0.5 + 1e-9


def test_embeddings_are_cached_by_file_hash_and_a_rerun_reuses_them(data, synthetic, evaluated):
    out, result = evaluated
    real_cache = sorted((out / "cache" / "real").glob("*.parquet"))
    # one file per distinct recording and band, named by its hash
    assert len([p for p in real_cache if "lowpass" not in p.name]) == len(data.real)
    assert len([p for p in real_cache if "lowpass8000" in p.name]) == len(data.real)
    assert (
        len(list((out / "cache" / "synthetic").glob("*.parquet")))
        == len(list(Path(synthetic[1], "shards").glob("*.tar"))) + 1
    )


def test_cli_bad_input_is_one_line_and_exit_2(data, synthetic, tmp_path):
    runner = CliRunner()
    bad_table = tmp_path / "bad.csv"
    bad_table.write_text("label,file\nWood Thrush,x.wav\n")
    missing_audio = tmp_path / "missing.csv"
    missing_audio.write_text("label,path\nWood Thrush,nowhere.wav\n")
    cases = {
        "no 'label' column": None,
        "no 'path' column": ["--real", str(bad_table), "--synthetic", str(synthetic[0])],
        "no such audio file": ["--real", str(missing_audio), "--synthetic", str(synthetic[0])],
        "file not found": ["--real", str(tmp_path / "none.csv"), "--synthetic", str(synthetic[0])],
        "no index": ["--real", str(data.real_table), "--synthetic", str(tmp_path / "empty-out")],
        "--ratio must be > 0": ["--real", str(data.real_table), "--synthetic", str(synthetic[0]), "--ratio", "0"],
    }
    (tmp_path / "empty-out").mkdir()
    for expected, args in cases.items():
        if args is None:
            continue
        result = runner.invoke(app, ["evaluate", *args, "--out", str(tmp_path / "eval"), "--no-progress"])
        assert result.exit_code == 2, (expected, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], (expected, result.output)
        assert "Traceback" not in result.output


def test_f_the_cnn_has_a_row_per_variant_and_never_shows_noise_as_a_gain(evaluated):
    _, result = evaluated
    held_in, noise = _names(result)
    second = result["cnn"]
    assert second["enabled"] and "re-augmented" in second["note"]
    expected = [
        v for v in result["protocol"]["variants"] if v == "real only" or "oversampled" in v or v.endswith(": all")
    ]
    assert list(second["variants"]) == expected and held_in in expected and noise in expected
    for name, v in second["variants"].items():
        assert v["macro"]["roc_auc"]["value"] is not None, name
        if name.startswith(noise.split(":")[0] + ":"):
            for cell in (v["macro"]["roc_auc"], v["left_out"]["roc_auc"], v["macro"]["cmap"]):
                assert cell["verdict"] != "gain", name
            assert v["macro"]["roc_auc"].get("vs_baseline_verdict") != "gain", name
    # real only cannot learn a class it never trained on, whatever the model
    assert second["variants"]["real only"]["left_out"]["roc_auc"]["value"] == pytest.approx(0.5)


def test_f_the_cnn_is_deterministic_per_seed(data):
    from birdgen_ray.evaluate.cnn import fit_predict
    from birdgen_ray.evaluate.inputs import read_real
    from birdgen_ray.evaluate.melspec import mel_real

    recordings = read_real(data.real_table)[:6]
    spectra = mel_real(recordings)
    labels = np.repeat([r.label for r in recordings], [len(mel_real([r])) for r in recordings])
    classes = sorted(set(labels.tolist()))
    runs = [fit_predict(spectra, labels, spectra[:8], classes, seed) for seed in (0, 0, 1)]
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])
    assert np.allclose(runs[0].sum(1), 1.0, atol=1e-5)


def test_page_renders_in_headless_chromium(evaluated, chromium, serve):  # noqa: F811
    from selenium.webdriver.common.by import By

    from tests.test_report import page_problems

    out, result = evaluated
    problems, _ = page_problems(chromium, serve(out) + "index.html")
    assert problems == []
    assert len(chromium.find_elements(By.CSS_SELECTOR, "table.macro")) == len(result["bands"])
    rows = chromium.find_elements(By.CSS_SELECTOR, "table.macro tr")
    assert len(rows) == len(result["bands"]) * (1 + len(result["protocol"]["variants"]))
    assert len(chromium.find_elements(By.CSS_SELECTOR, "table.left-out")) == len(result["bands"])
    assert chromium.find_elements(By.CSS_SELECTOR, "table.against-baseline tr")
    assert chromium.find_element(By.ID, "leakage").is_displayed()
    flags = chromium.find_elements(By.CSS_SELECTOR, "#flags li")
    assert [f.text for f in flags] == result["flags"]
    points = chromium.find_elements(By.CSS_SELECTOR, "svg.scatter circle.point")
    assert points and all(p.is_displayed() for p in points)
    bins = chromium.find_elements(By.CSS_SELECTOR, "table.bins tr")
    assert "[" in bins[1].text  # differences with their intervals
    assert chromium.find_elements(By.CSS_SELECTOR, "table.similarity")
    cnn_rows = chromium.find_elements(By.CSS_SELECTOR, "#cnn table.cnn-macro tr")
    assert len(cnn_rows) == 1 + len(result["cnn"]["variants"]) and cnn_rows[1].is_displayed()


def test_e_one_recording_per_class_is_split_into_time_blocks_and_said_to_be_weaker(tmp_path):
    """Every class one recording: folds over time blocks of each recording, with a block's gap; a
    recording too short for the blocks stops the run with what more is needed."""
    from tests.evaluation_data import write_output
    from tests.real_audio import AUDIO

    files = {"Wood Thrush": "opensoundscape-1min.wav", "Ash-browed Spinetail": "scikit-maad-spinetail.wav"}
    table = tmp_path / "one-each.csv"
    table.write_text("label,path\n" + "".join(f"{label},{AUDIO / name}\n" for label, name in files.items()))
    noise = np.random.default_rng(0).standard_normal((4, WINDOW_SAMPLES)).astype(np.float32) * 0.05
    output = write_output(tmp_path / "out", list(files) * 2, list(noise))
    args = ["evaluate", "--real", str(table), "--synthetic", str(output), "--out", str(tmp_path / "eval")]
    args += ["--bootstrap", "20", "--seeds", "1", "--ratio", "1", "--folds", "4", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "weaker split" in " ".join(result.output.split())
    evaluated = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    split = evaluated["protocol"]["split"]
    assert split["kind"] == "time blocks" and split["blocks"] == 4 and split["gap_blocks"] == 1
    assert evaluated["real"]["units"] == 2 * 4 and evaluated["protocol"]["every_recording_tested_once"]
    audio, rate = sf.read(AUDIO / files["Ash-browed Spinetail"], dtype="float32")
    sf.write(tmp_path / "six-seconds.wav", audio[: 6 * rate], rate)
    short = tmp_path / "short.csv"
    short.write_text(f"label,path\nWood Thrush,{AUDIO / files['Wood Thrush']}\nAsh-browed Spinetail,six-seconds.wav\n")
    args[2] = str(short)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "needs >= 4" in result.output and "second recording" in result.output
