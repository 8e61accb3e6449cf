"""plan -> submit through the real CLI and a real local Ray: with the model-free null generator,
and on the built-in tiny AudioLDM2.

Raising --target and re-planning must only add clips: the second submit generates exactly the new
rows and leaves every committed clip alone.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.plan.validate import read_plan
from tests.example_data import example_classes, write_recordings, write_taxonomy

runner = CliRunner()
COMMON_ARGS = ["--sample-rate", "16000", "--shard-size", "4", "--num-actors", "1", "--no-progress"]
TINY_ARGS = ["--model", "tiny", "--steps", "2", *COMMON_ARGS]
NULL_ARGS = ["--generator", "null", *COMMON_ARGS]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    return result


def plan_submit_replan_submit(tmp_path, submit_args):
    from birdgen_ray import open_index, read_clip

    ex = example_classes(4, seed=1, low=1, high=6, taxa=("Aves", "Amphibia"))
    train = write_recordings(tmp_path / "train.csv", ex, "2025")
    taxonomy = write_taxonomy(tmp_path / "taxonomy.csv", ex)
    out = tmp_path / "out"

    invoke("plan", train, "--taxonomy", taxonomy, "--target", 3, "--duration", 1.0, "-o", tmp_path / "p1.parquet")
    first = read_plan(str(tmp_path / "p1.parquet"))
    invoke("submit", tmp_path / "p1.parquet", "--out", out, *submit_args)

    index = open_index(str(out))
    assert sorted(index["clip_id"].to_pylist()) == sorted(first["clip_id"].to_pylist())
    by_id = {row["clip_id"]: row for row in index.to_pylist()}
    for row in first.to_pylist():  # plan extras ride along into the index
        got = by_id[row["clip_id"]]
        assert (got["label"], got["prompt"], got["taxon_class"], got["rule"], got["take"]) == (
            row["label"],
            row["prompt"],
            row["taxon_class"],
            row["rule"],
            row["take"],
        )
        audio, rate = read_clip(str(out), row["clip_id"])
        assert rate == 16_000 and len(audio) == 16_000

    invoke("plan", train, "--taxonomy", taxonomy, "--target", 5, "--duration", 1.0, "-o", tmp_path / "p2.parquet")
    second = read_plan(str(tmp_path / "p2.parquet"))
    assert set(first["clip_id"].to_pylist()) < set(second["clip_id"].to_pylist())
    invoke("submit", tmp_path / "p2.parquet", "--out", out, *submit_args)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["generated_this_run"] == second.num_rows - first.num_rows
    assert sorted(open_index(str(out))["clip_id"].to_pylist()) == sorted(second["clip_id"].to_pylist())


def test_plan_then_submit_with_null_generator(ray_local, tmp_path):
    plan_submit_replan_submit(tmp_path, NULL_ARGS)


@pytest.mark.slow
def test_plan_then_submit_on_tiny_model(ray_local, tmp_path):
    plan_submit_replan_submit(tmp_path, TINY_ARGS)
