"""`birdgen-ray evaluate` end to end on real recordings (../shared/audio cut into 3 s windows, labelled with
the species BirdNET finds in them), with the real BirdNET model, real outputs and the real CLI.

The harness must tell help from harm:
  (a) held-in windows of the real recordings, lightly augmented, raise the left-out (one-recording) classes
  (b) the null generator's clips (noise and chirps) do not, and are separable from real at AUC > 0.9
  (c) a real set whose recordings share windows (overlapping cuts) fails the protocol check
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

pytestmark = needs_real_audio


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
    for band, data in result["bands"].items():
        variants = data["variants"]
        # real only cannot learn a class it never trained on: chance on the left-out bin
        assert variants["real only"]["bins"]["1"]["roc_auc"]["value"] == pytest.approx(0.5)
        gain = variants[held_in]["bins"]["1"]
        assert gain["roc_auc"]["difference"] > 0.15 and gain["roc_auc"]["difference_ci"][0] > 0, band
        assert gain["cmap"]["difference"] > 0, band
        harm = variants[noise]["bins"]["1"]
        assert harm["roc_auc"]["difference"] < gain["roc_auc"]["difference"] - 0.1, band
        assert harm["roc_auc"]["difference_ci"][0] <= 0, band  # no demonstrable gain from noise
        assert harm["cmap"]["difference"] < gain["cmap"]["difference"], band
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


def test_page_renders_in_headless_chromium(evaluated, chromium, serve):  # noqa: F811
    from selenium.webdriver.common.by import By

    from tests.test_report import page_problems

    out, result = evaluated
    problems, _ = page_problems(chromium, serve(out) + "index.html")
    assert problems == []
    assert len(chromium.find_elements(By.CSS_SELECTOR, "table.macro")) == len(result["bands"])
    rows = chromium.find_elements(By.CSS_SELECTOR, "table.macro tr")
    assert len(rows) == len(result["bands"]) * (1 + len(result["protocol"]["variants"]))
    points = chromium.find_elements(By.CSS_SELECTOR, "svg.scatter circle.point")
    assert points and all(p.is_displayed() for p in points)
    bins = chromium.find_elements(By.CSS_SELECTOR, "table.bins tr")
    assert "[" in bins[1].text  # differences with their intervals
    assert chromium.find_elements(By.CSS_SELECTOR, "table.similarity")
