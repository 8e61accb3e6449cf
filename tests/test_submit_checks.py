"""Checks `submit` makes before any work: --dry-run writes nothing, a CSV given as the plan is named."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from tests.made_outputs import null_output
from tests.plans import plan_table, write_plan

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


def snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dry_run_writes_nothing_and_says_what_would_run(tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(20))
    before = snapshot(tmp_path)
    result = invoke("submit", plan, "--out", tmp_path / "out", "--dry-run", "--shard-size", 8, "--num-actors", 1)
    assert result.exit_code == 0, result.output
    assert "20 clips" in result.output and "3 shards" in result.output and "actors: 1" in result.output
    assert "estimated GPU time" in result.output and "NVIDIA H200" in result.output
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before


def test_dry_run_on_an_existing_output_counts_what_is_committed_and_changes_nothing(ray_local, tmp_path):
    out = null_output(tmp_path, plan_table(4))
    grown = write_plan(tmp_path / "grown.parquet", plan_table(10))
    before = snapshot(tmp_path)
    result = invoke("submit", grown, "--out", out, "--dry-run", "--generator", "null")
    assert result.exit_code == 0, result.output
    assert "10 clips, 4 already committed" in result.output and "would generate 6 clips" in result.output
    assert snapshot(tmp_path) == before


def test_dry_run_still_refuses_an_invalid_plan(tmp_path):
    table = plan_table(3)
    table = table.set_column(table.column_names.index("prompt"), "prompt", pa.array(["ok", "", "ok"]))
    result = invoke("submit", write_plan(tmp_path / "bad.parquet", table), "--out", tmp_path / "o", "--dry-run")
    assert result.exit_code == 2 and "column 'prompt': null or empty in row 1" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["train_metadata.csv", "plan.parquet"])
def test_a_csv_given_as_the_plan_is_named_as_one(tmp_path, name):
    csv_file = tmp_path / name
    csv_file.write_bytes((REPO / "examples" / "train_metadata.csv").read_bytes())
    result = invoke("submit", csv_file, "--out", tmp_path / "o")
    assert result.exit_code == 2
    assert "looks like a CSV" in result.output and "birdgen-ray plan" in result.output
    assert "magic bytes" not in result.output and not (tmp_path / "o").exists()
