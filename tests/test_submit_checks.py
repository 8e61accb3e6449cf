"""Checks `submit` makes before any work: --dry-run writes nothing, a CSV given as the plan is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
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


@pytest.mark.slow  # starts a Ray
def test_a_local_ray_started_by_submit_keeps_token_auth_on_and_says_so_in_one_line(tmp_path):
    """Ray's servers listen on all interfaces: the token is what keeps others from running code here."""
    import os
    import subprocess
    import sys

    plan = write_plan(tmp_path / "plan.parquet", plan_table(2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    command = [sys.executable, "-c", "from birdgen_ray.cli import app; app()", "submit", plan, "--out"]
    command += [str(tmp_path / "out"), "--generator", "null", "--num-actors", "1", "--gpus-per-actor", "0"]
    done = subprocess.run(command + ["--no-progress"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "token" in line.lower()]
    assert len(lines) == 1 and "token authentication on" in lines[0], done.stderr
    assert "RAY_AUTH_MODE=disabled" not in done.stderr
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()  # Ray made the token the run used


def test_no_doc_advises_turning_token_auth_off():
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    for doc in docs:
        assert "RAY_AUTH_MODE=disabled" not in doc.read_text(encoding="utf-8"), doc
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "ray get-auth-token --generate" in readme and "ray job submit" in readme


def test_pndm_is_refused_for_a_plan_with_reference_rows_in_one_line(tmp_path):
    """PLMS repeats a warm-up timestep: a row started part-way would run against the wrong one."""
    table = plan_table(3)
    table = table.append_column("reference", pa.array(["a.wav", None, None], pa.string()))
    table = table.append_column("reference_root", pa.array([str(tmp_path), None, None], pa.string()))
    table = table.append_column("reference_start_s", pa.array([0.0, None, None], pa.float64()))
    table = table.append_column("strength", pa.array([0.5, None, None], pa.float64()))
    plan = write_plan(tmp_path / "refs.parquet", table)
    sf.write(tmp_path / "a.wav", np.zeros(16_000, np.float32), 16_000)  # a readable reference for --dry-run
    for extra in (["--dry-run"], []):
        result = invoke("submit", plan, "--out", tmp_path / "o", "--scheduler", "pndm", *extra)
        assert result.exit_code == 2, result.output
        assert "--scheduler pndm cannot start from a reference: 1 rows" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
    text_only = write_plan(tmp_path / "text.parquet", plan_table(3))
    assert invoke("submit", text_only, "--out", tmp_path / "o", "--scheduler", "pndm", "--dry-run").exit_code == 0
    assert invoke("submit", plan, "--out", tmp_path / "o", "--scheduler", "ddim", "--dry-run").exit_code == 0


def test_dry_run_checks_everything_submit_would_naming_it_in_one_line(tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(6))
    (tmp_path / "a_file").write_text("x")
    wrong_map = tmp_path / "map.csv"
    wrong_map.write_text("label,target\nasbfly,x\n")  # not label,birdnet_label
    with_reference = plan_table(2).append_column("reference", pa.array(["gone.ogg", None]))
    with_reference = with_reference.append_column("reference_root", pa.array([str(tmp_path), None]))
    referencing = write_plan(tmp_path / "ref.parquet", with_reference)
    for args, expected in [
        ([plan, "--out", tmp_path / "a_file" / "out"], "a_file is a file, not a folder"),
        ([plan, "--out", tmp_path / "out", "--species-map", wrong_map], "needs the columns label,birdnet_label"),
        ([plan, "--out", tmp_path / "out", "--model", tmp_path / "no-model"], "model directory not found"),
        ([referencing, "--out", tmp_path / "out", "--generator", "null"], "gone.ogg"),
    ]:
        result = invoke("submit", *args, "--dry-run")
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and expected in lines[0], (args, result.output)
    assert invoke("submit", plan, "--out", tmp_path / "out", "--dry-run", "--model", "tiny").exit_code == 0
