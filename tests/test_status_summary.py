"""What people see of a run: summary.json, `birdgen-ray status`, the submit exit code, the progress bar."""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import asdict
from importlib.metadata import version

import pytest
from rich.console import Console
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import GenerationConfig, RunConfig
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.lease import OutputLease
from birdgen_ray.schedule.progress import RunProgress
from birdgen_ray.schedule.runner import submit
from tests.fault_hooks import FAIL_LABEL_ENV, SILENT_LABEL_ENV
from tests.plans import plan_table, write_plan

# 12 clips of one length: sorted by clip_id the 4 "bad-..." clips fill the first shard of 4.
LABELS = ("good", "good", "bad")


def flat(text: str) -> str:
    """Rich wraps long lines to the (test) terminal width; compare words, not line breaks."""
    return " ".join(text.split())


def half_failing_plan(tmp_path) -> str:
    return write_plan(tmp_path / "plan.parquet", plan_table(12, labels=LABELS, durations=(1.0,)))


def test_summary_counts_throughput_gpu_seconds_stages_versions_and_settings(ray_local, tmp_path):
    run = RunConfig(
        plan_path=half_failing_plan(tmp_path),
        out=str(tmp_path / "out"),
        generator="null",
        num_actors=2,
        gpus_per_actor=1.0,
        shard_size=4,
        max_shard_attempts=2,
        progress=False,
        actor_env={FAIL_LABEL_ENV: "bad"},
        generation=GenerationConfig(num_inference_steps=7),
    )
    summary = submit(run)

    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "incomplete"
    assert (summary["planned"], summary["done"], summary["missing"]) == (12, 8, 4)
    assert (summary["generated_this_run"], summary["failed_clips"], summary["already_done_before_run"]) == (8, 4, 0)
    ((failed_shard, error),) = summary["failed_shards"].items()
    assert failed_shard.startswith("shard-") and "injected failure" in error
    assert summary["shard_retries"] == 1 and summary["actors"] == 2 and summary["actors_replaced"] == 0
    assert summary["verdicts"] == {"pass": 8}
    assert summary["clips_per_second"] == pytest.approx(8 / summary["wall_seconds"], rel=0.01)
    assert summary["engine_counts"] == {}  # the null generator runs no model
    stages = summary["stage_seconds"]
    assert set(stages) == {"generate", "postprocess", "write"} and all(seconds > 0 for seconds in stages.values())
    # GPU-seconds are the time actors held the model (1 GPU each); writing overlaps it and adds the rest.
    assert summary["gpu_seconds"] == summary["generator_seconds"] > 0
    assert summary["actor_seconds"] == pytest.approx(summary["generator_seconds"] + stages["write"], abs=0.003)
    assert stages["generate"] + stages["postprocess"] <= summary["generator_seconds"] + 0.002
    assert list(summary["driver_seconds"]) == ["prepare", "start_actors", "run_shards", "finish"]
    assert sum(summary["driver_seconds"].values()) <= summary["wall_seconds"]
    assert summary["bytes_written"] == sum(p.stat().st_size for p in (tmp_path / "out" / "shards").glob("*.tar"))
    assert summary["versions"]["ray"] == version("ray") and summary["versions"]["pyarrow"] == version("pyarrow")
    settings = summary["settings"]
    assert settings["generation"] == json.loads(json.dumps(asdict(run.generation)))
    assert settings["generation"]["num_inference_steps"] == 7
    assert settings["settings_fingerprint"] == run.generation.fingerprint()
    assert (settings["shard_size"], settings["max_shard_attempts"], settings["generator"]) == (4, 2, "null")
    assert settings["engine"] == json.loads(json.dumps(asdict(run.engine)))
    assert not {"generation", "engine", "generator", "shard_size"} & set(summary)  # kept once, under settings
    assert settings["actor_env"] == [FAIL_LABEL_ENV]  # names only: values may be secrets


def test_cli_submit_exits_non_zero_on_failures_and_status_reports_from_the_output(ray_local, tmp_path):
    plan, out = half_failing_plan(tmp_path), str(tmp_path / "out")
    runner = CliRunner()
    base = [
        "submit",
        plan,
        "--out",
        out,
        "--generator",
        "null",
        "--shard-size",
        "4",
        "--num-actors",
        "2",
        "--no-progress",
    ]

    failing = runner.invoke(app, base + ["--max-shard-attempts", "1", "--actor-env", f"{FAIL_LABEL_ENV}=bad"])
    assert failing.exit_code == 1, failing.output
    assert "incomplete: 8/12 clips" in flat(failing.output) and "(8 new, 4 failed" in flat(failing.output)
    assert re.search(r"failed shard-[0-9a-f]{20}: .*injected failure", flat(failing.output))

    status = runner.invoke(app, ["status", out, "--json"])
    assert status.exit_code == 0, status.output
    st = json.loads(status.output)
    assert (st["planned"], st["done"], st["failed"], st["pending"], st["shards"]) == (12, 8, 4, 0, 2)
    assert st["failures"][0]["clips"] == 4 and "injected failure" in st["failures"][0]["error"]
    assert st["running"] is None and st["last_run"]["status"] == "incomplete"

    lock = OutputLease(Output(out))
    lock.acquire()  # a run in progress shows up as such
    text = runner.invoke(app, ["status", out])
    lock.release()
    assert "planned 12, done 8, failed 4, pending 0 (2 shards)" in flat(text.output)
    assert f"lease held by run {lock.run_id}" in flat(text.output)
    assert "last run that generated clips: incomplete" in flat(text.output)

    fixed = runner.invoke(app, base)  # the cause is gone: the rerun makes only the 4 missing clips
    assert fixed.exit_code == 0, fixed.output
    assert "complete: 12/12 clips" in flat(fixed.output) and "(4 new, 0 failed" in flat(fixed.output)
    st = json.loads(runner.invoke(app, ["status", out, "--json"]).output)
    assert (st["done"], st["failed"], st["failures"]) == (12, 0, [])


def test_status_of_a_folder_that_is_no_output_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not a birdgen-ray output (no plan.parquet)" in flat(result.output)


def test_submit_rejects_a_malformed_actor_env(tmp_path):
    result = CliRunner().invoke(
        app, ["submit", half_failing_plan(tmp_path), "--out", str(tmp_path / "o"), "--actor-env", "NOEQUALS"]
    )
    assert result.exit_code == 2 and "--actor-env expects NAME=VALUE, got 'NOEQUALS'" in flat(result.output)


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_shows_count_rate_failures_and_eta(terminal):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=160, color_system=None)
    progress = RunProgress(20, console=console, log_every_s=0.0)
    progress.advance(5)
    time.sleep(0.05)
    progress.advance(5)
    progress.failed(3)
    progress.in_flight(4)  # an actor's batches of a shard not committed yet: the bar moves on
    progress.close()
    screen = buffer.getvalue()
    final = [line for line in screen.splitlines() if "17/20" in line][-1]
    assert re.search(r"\d+\.\d clips/s", final) and ("failed 3" in final or "3 failed" in final) and "ETA" in final
    assert "(10 committed, 4 in flight)" in final or "10 committed, 4 in flight," in final
    if not terminal:  # a log gets plain lines with the same figures, and no bar
        assert re.search(
            r"progress: 13/20 clips, 10 committed, 0 in flight, 3 failed, \d+\.\d clips/s, ETA \d+ s", screen
        )
        assert re.search(r"progress: 17/20 clips, 10 committed, 4 in flight, 3 failed, \d+\.\d clips/s", screen)
        assert all(line.startswith("progress: ") for line in screen.splitlines()), screen


def test_a_run_done_in_one_update_still_shows_its_rate():
    """One shard holding every clip: rich has no windowed speed then, and none once finished."""
    buffer = io.StringIO()
    progress = RunProgress(12, console=Console(file=buffer, force_terminal=True, width=160, color_system=None))
    time.sleep(0.05)
    progress.advance(12)
    progress.close()
    final = [line for line in buffer.getvalue().splitlines() if "12/12" in line][-1]
    assert re.search(r"\d+\.\d clips/s", final), final


def test_clips_kept_with_a_failing_verdict_and_clips_of_earlier_plans_are_counted(ray_local, tmp_path):
    """Done is not the same as usable: gate failures and clips outside the current plan are said."""
    out = str(tmp_path / "out")
    first = write_plan(tmp_path / "first.parquet", plan_table(6, labels=("quiet", "ok")))
    runner = CliRunner()
    base = [
        "--out",
        out,
        "--generator",
        "null",
        "--no-progress",
        "--max-retries",
        "0",
        "--actor-env",
        f"{SILENT_LABEL_ENV}=quiet",
    ]
    made = runner.invoke(app, ["submit", first, *base])
    assert made.exit_code == 0, made.output
    assert "3 clips failed the quality gate after every retry" in flat(made.output)
    quiet_only = runner.invoke(app, ["export", out, str(tmp_path / "syn"), "--label", "quiet"])
    assert quiet_only.exit_code == 1  # nothing to train on is an error for a script, not a success
    assert "all 3 selected clips failed the quality gate" in flat(quiet_only.output)
    assert not (tmp_path / "syn").exists()  # not even a header-only CSV
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["done"], summary["gate_failed"]) == (6, 3)

    st = json.loads(runner.invoke(app, ["status", out, "--json"]).output)
    assert (st["done"], st["gate_failed"], st["not_in_plan"]) == (6, 3, 0)
    assert "3 of the done clips failed the quality gate" in flat(runner.invoke(app, ["status", out]).output)

    second = write_plan(tmp_path / "second.parquet", plan_table(2, start_seed=100))
    assert runner.invoke(app, ["submit", second, *base]).exit_code == 0
    text = flat(runner.invoke(app, ["status", out]).output)
    assert "planned 2, done 2" in text and "also holds 6 clips from earlier plans" in text
    assert "3 of them failed the quality gate" in text
    assert "last run that generated clips: complete, 2 clips at" in text
    assert runner.invoke(app, ["submit", second, *base]).exit_code == 0  # nothing left to do
    assert "last run that generated clips: complete, 2 clips at" in flat(runner.invoke(app, ["status", out]).output)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model_id"] == "null"  # from the index
