"""The index loads with datasets, pandas, pyarrow and duckdb; (audio, label) pairs for training; the
documented snippets in docs/using-results.md run as written."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from birdgen_ray import open_index, read_clip
from birdgen_ray.config import GenerationConfig, QualityThresholds
from birdgen_ray.export import export_birdclef
from birdgen_ray.index.dataset import ClipDataset, iter_training_pairs
from birdgen_ray.io.audio import fit_length
from tests.made_outputs import birdclef_plan, null_output

DOC = Path(__file__).resolve().parents[1] / "docs" / "using-results.md"


@pytest.fixture(scope="module", autouse=True)
def offline_hf_cache(tmp_path_factory):
    """`datasets` offline with a throwaway cache (set before it is first imported)."""
    cache = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HOME", str(cache))
        mp.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
        yield cache


@pytest.fixture(scope="module")
def gated_run(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """(output, real train_metadata.csv): 13 clips in 3 classes, about half failing a level gate."""
    folder = tmp_path_factory.mktemp("gated")
    plan = birdclef_plan(folder / "ungated", n_classes=3, target=6)
    probe = null_output(folder / "ungated", plan)
    # the null generator makes the same audio for the same plan: a gate at the median fails about half
    gate = QualityThresholds(min_peak_dbfs=statistics.median(open_index(probe)["peak_dbfs"].to_pylist()), max_retries=0)
    out = null_output(folder, plan, generation=GenerationConfig(quality=gate))
    verdicts = set(open_index(out)["verdict"].to_pylist())
    assert verdicts == {"pass", "fail:too_quiet"}
    return out, folder / "ungated" / "train_metadata.csv"


def test_index_loads_the_same_in_datasets_pandas_pyarrow_and_duckdb(gated_run, offline_hf_cache):
    import duckdb
    from datasets import load_dataset

    out, _ = gated_run
    path = str(out / "index.parquet")
    table = pq.read_table(path)
    frame = pd.read_parquet(path)
    ds = load_dataset("parquet", data_files=path, split="train", cache_dir=str(offline_hf_cache / "datasets"))

    assert table.num_rows == len(frame) == len(ds) == 13
    assert ds.column_names == table.column_names == list(frame.columns)
    assert ds["clip_id"] == table["clip_id"].to_pylist() == frame["clip_id"].tolist()
    assert ds[0]["seed"] == table["seed"][0].as_py() and ds[0]["real_count"] == table["real_count"][0].as_py()

    counts = dict(duckdb.sql(f"SELECT label, count(*) FROM '{path}' WHERE verdict = 'pass' GROUP BY label").fetchall())
    assert counts == dict(Counter(frame.loc[frame["verdict"] == "pass", "label"]))
    [(shards,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/shards/*.parquet')").fetchall()
    assert shards == 13  # the per-shard indexes read the same way, mid-run too

    row = ds.filter(lambda r: r["verdict"] == "pass")[0]  # a row from datasets locates its audio
    audio, rate = read_clip(str(out), row)
    assert rate == row["sample_rate"] and len(audio) == row["num_samples"]


def test_training_pairs_are_the_passed_clips_audio_and_labels(gated_run):
    out, _ = gated_run
    rows = {r["clip_id"]: r for r in open_index(out).to_pylist()}
    passed = [r for r in rows.values() if r["verdict"] == "pass"]

    pairs = list(iter_training_pairs(str(out)))
    assert len(pairs) == len(passed)
    expected = sorted((r["label"], read_clip(str(out), r)[0].tobytes()) for r in passed)
    assert sorted((label, audio.tobytes()) for audio, label in pairs) == expected
    assert all(audio.dtype == np.float32 and audio.ndim == 1 for audio, _ in pairs)

    everything = list(iter_training_pairs(str(out), include_failed=True))
    assert len(everything) == 13

    label = passed[0]["label"]
    at_16k = list(iter_training_pairs(str(out), labels=[label], sample_rate=16_000))
    assert {lb for _, lb in at_16k} == {label}
    assert len(at_16k) == sum(1 for r in passed if r["label"] == label)
    assert all(len(audio) == 16_000 for audio, _ in at_16k)  # 1 s clips, resampled from 32 kHz
    with pytest.raises(ValueError, match="labels not in the index.*nosuch"):
        next(iter_training_pairs(str(out), labels=["nosuch"]))


def test_clip_dataset_batches_in_worker_processes_with_the_real_class_indices(gated_run):
    out, real_csv = gated_run
    real_classes = sorted(set(pd.read_csv(real_csv)["primary_label"])) + ["zzzonly1"]  # a class with no clips
    dataset = ClipDataset(str(out), classes=real_classes, num_samples=24_000)
    passed = [r for r in open_index(out).to_pylist() if r["verdict"] == "pass"]
    assert len(dataset) == len(passed) and dataset.classes == real_classes

    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    waveforms, targets = [], []
    for batch, target in loader:
        assert batch.dtype == torch.float32 and batch.shape[1] == 24_000
        waveforms.append(batch)
        targets.append(target)
    waveforms, targets = torch.cat(waveforms), torch.cat(targets)
    assert waveforms.shape[0] == len(passed)
    assert sorted(real_classes[int(t)] for t in targets) == sorted(r["label"] for r in passed)
    first = dataset.rows[0]  # unshuffled: the first item is the first row
    assert torch.equal(waveforms[0], torch.from_numpy(read_clip(str(out), first)[0][:24_000]))

    with pytest.warns(UserWarning, match=r"clips of \d+ labels not in `classes` are left out"):
        padded = ClipDataset(str(out), classes=[first["label"]], num_samples=40_000)  # 1 s clips
    assert len(padded) == sum(1 for r in passed if r["label"] == first["label"])
    audio, target = padded[0]
    assert target == 0 and audio.shape == (40_000,) and float(audio[32_000:].abs().sum()) == 0.0
    assert float(audio[:32_000].abs().sum()) > 0


def test_fit_length_crops_and_pads():
    audio = np.arange(1, 6, dtype=np.float32)
    assert fit_length(audio, 3).tolist() == [1, 2, 3]
    assert fit_length(audio, 7).tolist() == [1, 2, 3, 4, 5, 0, 0]


def doc_snippets() -> list[str]:
    """The python blocks of the doc marked <!-- tested -->, in order."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"<!-- tested -->\s*```python\n(.*?)```", text, flags=re.S)


def test_documented_snippets_run_as_written(gated_run, tmp_path, monkeypatch):
    out, real_csv = gated_run
    snippets = doc_snippets()
    assert len(snippets) == 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").symlink_to(out, target_is_directory=True)
    export_birdclef("out", "synthetic")  # the doc's `birdgen-ray export out/ --format birdclef synthetic/`
    real_classes = sorted(set(pd.read_csv(real_csv)["primary_label"]))

    namespace = {"real_csv": str(real_csv), "class_names": real_classes}
    for code in snippets:
        exec(compile(code, str(DOC), "exec"), namespace)

    passed = sum(1 for v in open_index(out)["verdict"].to_pylist() if v == "pass")
    assert namespace["is_synthetic"].sum() == passed  # the concat snippet
    assert len(namespace["ds"]) == 13 and namespace["rate"] == 32_000  # the loading snippet
    assert isinstance(namespace["audio"], np.ndarray) and namespace["label"] in real_classes  # the pairs loop ran
    assert namespace["waveforms"].shape[1] == 32_000 and namespace["targets"].dtype == torch.int64
