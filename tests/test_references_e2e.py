"""References end to end on the local S3 server: plan --references s3://, submit (tiny model, Ray),
provenance in the index, a row regenerated alone reproduces its clip, export + the fold-split doc."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import EngineConfig, GenerationConfig, RunConfig
from birdgen_ray.export.birdclef import export_birdclef
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.index.reader import open_index, read_clip
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.rows import plan_rows
from birdgen_ray.schedule.runner import submit
from tests.real_audio import needs_real_audio
from tests.test_engine import relative_l2
from tests.test_plan_references import cut
from tests.test_s3 import BUCKET, s3_server  # noqa: F401 (the moto server fixture)

pytestmark = [needs_real_audio, pytest.mark.usefixtures("tiny_cache_and_one_thread")]
DOC = Path(__file__).resolve().parents[1] / "docs" / "using-results.md"


def test_references_on_s3_from_plan_to_export(ray_local, s3_server, tmp_path, monkeypatch):  # noqa: F811
    client, options = s3_server
    recordings = {
        "alpha/XC1.wav": cut("scikit-maad-spinetail.wav", 0.0, 3.0),
        "beta/XC2.wav": cut("opensoundscape-birds_10s.wav", 0.0, 3.0),
    }
    for key, data in recordings.items():
        client.put_object(Bucket=BUCKET, Key=f"birdclef/train_audio/{key}", Body=data)
    counts = tmp_path / "counts.csv"
    counts.write_text("label,count\nalpha,1\nbeta,2\ngamma,3\n")
    plan_path = tmp_path / "plan.parquet"

    # 1. plan: references read from s3:// through the storage options
    result = CliRunner().invoke(
        app,
        ["plan", str(counts), "--target", "4", "--duration", "1", "--references", f"s3://{BUCKET}/birdclef"]
        + ["--strength", "0.3:0.7", "--storage-options", json.dumps(options), "-o", str(plan_path)],
    )
    assert result.exit_code == 0, result.output
    assert "fall back to text-only: gamma" in result.output

    # 2. submit: the actors read the references from S3 too
    generation = GenerationConfig(model="tiny", num_inference_steps=4)
    out = f"s3://{BUCKET}/run-refs"
    run = RunConfig(
        plan_path=str(plan_path),
        out=out,
        storage_options=options,
        generation=generation,
        engine=EngineConfig(batch_size=2, device="cpu"),
        num_actors=1,
        gpus_per_actor=0,
        shard_size=6,
        progress=False,
    )
    assert submit(run)["status"] == "complete"

    # 3. provenance in the index
    index = {row["clip_id"]: row for row in open_index(out, options).to_pylist()}
    assert len(index) == 6
    for row in index.values():
        if row["label"] == "gamma":
            assert row["reference"] is None and row["reference_sha256"] is None and row["strength"] is None
        else:
            assert row["reference_root"] == f"s3://{BUCKET}/birdclef/train_audio"
            assert row["reference_sha256"] == hashlib.sha256(recordings[row["reference"]]).hexdigest()
            assert 0.3 <= row["strength"] <= 0.7 and row["reference_start_s"] >= 0.0

    # 4. one row regenerated alone, from its plan row, reproduces its clip (16-bit WAV apart)
    plan = {r.clip_id: r for r in plan_rows(read_plan(str(plan_path)))}
    engine = AudioLDM2Engine(generation, EngineConfig(batch_size=1, device="cpu"), options)
    for clip_id in [next(c for c, r in plan.items() if r.label == label) for label in ("alpha", "beta")]:
        (again,) = engine.generate([plan[clip_id]])
        stored, _ = read_clip(out, clip_id, options)
        assert relative_l2(again.audio, stored) < 1e-3
        assert again.reference_sha256 == index[clip_id]["reference_sha256"]

    # 5. export names each clip's reference; the documented fold split keeps references out of validation
    monkeypatch.chdir(tmp_path)
    export_birdclef(out, "synthetic", storage_options=options)
    exported = pd.read_csv("synthetic/train_metadata.csv")
    assert set(exported["reference_filename"].dropna()) == set(recordings)
    assert exported["reference_filename"].isna().sum() == 1  # gamma's text-only clip
    real_csv = tmp_path / "real.csv"
    names = [*recordings, "gamma/XC7.wav", "gamma/XC8.wav", "beta/XC9.wav", "alpha/XC10.wav"]
    pd.DataFrame({"primary_label": [n.split("/")[0] for n in names], "filename": names}).to_csv(real_csv, index=False)
    (snippet,) = re.findall(r"<!-- tested: references -->\s*```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace = {"real_csv": str(real_csv)}
    exec(compile(snippet, str(DOC), "exec"), namespace)
    for train, valid in namespace["splits"]:
        leaked = set(train["reference_filename"].dropna()) & set(valid["filename"])
        assert not leaked and set(valid["filename"]) <= set(names)  # validation: real rows only
    assert sum(len(train) for train, _ in namespace["splits"]) == 4 * len(names) + sum(
        5 - (not pd.isna(f)) for f in exported["reference_filename"]
    )
