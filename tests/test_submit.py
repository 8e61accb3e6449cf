"""The end-to-end job on a real local Ray with the null generator: layout, index, rerun, bad input."""

from __future__ import annotations

import io
import json
import os
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray import open_index, read_clip
from birdgen_ray.cli import app
from birdgen_ray.config import GenerationConfig, QualityThresholds, RunConfig
from birdgen_ray.index.schema import INDEX_SCHEMA
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.schedule import drive as drive_module
from birdgen_ray.schedule.drive import ActorStartFailed, drive
from birdgen_ray.schedule.lease import OutputLease, OutputLocked
from birdgen_ray.schedule.resume import SettingsMismatch
from birdgen_ray.schedule.runner import submit
from birdgen_ray.schedule.shards import make_shards
from birdgen_ray.schedule.sizing import ActorSizing, size_actor_pool
from tests.fault_hooks import SLEEP_ENV
from tests.plans import plan_table, write_plan


def null_run(plan_path, out, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=2, gpus_per_actor=0, shard_size=7, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=str(plan_path), out=str(out), **defaults)


def test_plan_of_dozens_on_two_actors_gives_one_decodable_row_per_clip(ray_local, tmp_path):
    plan = plan_table(30)
    summary = submit(null_run(write_plan(tmp_path / "plan.parquet", plan), tmp_path / "out"))

    assert summary["status"] == "complete" and summary["actors"] == 2
    index = open_index(tmp_path / "out")
    assert sorted(index["clip_id"].to_pylist()) == sorted(validate_plan(plan)["clip_id"].to_pylist())
    assert index.schema.names[: len(INDEX_SCHEMA)] == INDEX_SCHEMA.names
    assert index["taxon_class"].to_pylist() == ["Aves"] * 30  # plan extras ride along
    assert len(set(index["shard"].to_pylist())) == 5  # 30 clips / 7 per shard
    for row in index.to_pylist():
        audio, rate = read_clip(str(tmp_path / "out"), row["clip_id"])
        assert rate == 32_000 == row["sample_rate"]
        assert len(audio) == round(row["duration_s"] * 32_000) == row["num_samples"]
        info = sf.info(
            io.BytesIO(open(tmp_path / "out" / row["shard"], "rb").read()[row["offset"] : row["offset"] + row["size"]])
        )
        assert info.subtype == "PCM_16" and info.channels == 1


def test_rerun_generates_nothing_and_changed_plan_adds_only_new_clips(ray_local, tmp_path):
    out = tmp_path / "out"
    first = plan_table(12)
    submit(null_run(write_plan(tmp_path / "a.parquet", first), out))
    shard_files = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}

    again = submit(null_run(tmp_path / "a.parquet", out))
    assert again["generated_this_run"] == 0 and again["status"] == "complete"
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == shard_files

    grown = pa.concat_tables([first, plan_table(5, start_seed=100)])
    third = submit(null_run(write_plan(tmp_path / "b.parquet", grown), out))
    assert third["generated_this_run"] == 5
    assert open_index(out).num_rows == 17
    assert all(p.stat().st_mtime_ns == shard_files[p.name] for p in (out / "shards").iterdir() if p.name in shard_files)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda t: t.drop(["prompt"]), "column 'prompt': missing"),
        (
            lambda t: t.set_column(2, "seed", pa.array([1, -5, 3, None], pa.int64())),
            "column 'seed': null or negative in rows 1, 3",
        ),
        (lambda t: t.set_column(3, "duration_s", pa.array([1.0, float("nan"), 0.0, 2.0])), "column 'duration_s'"),
        (
            lambda t: t.set_column(1, "prompt", pa.array(["ok", "  ", None, "fine"])),
            "column 'prompt': null or empty in rows 1, 2",
        ),
        (lambda t: t.append_column("clip_id", pa.array(["a", "b", "a", "c/../x"])), "duplicate id 'a' in rows 0, 2"),
        (lambda t: t.set_column(2, "seed", pa.array(["1", "2", "3", "4"])), "column 'seed': expected integer"),
    ],
)
def test_invalid_plan_names_column_and_rows_and_writes_nothing(tmp_path, change, expected):
    bad = change(plan_table(4).drop(["taxon_class"]))
    path = write_plan(tmp_path / "bad.parquet", bad)
    with pytest.raises(PlanError) as err:
        submit(null_run(path, tmp_path / "out"))
    assert expected in str(err.value) and "bad.parquet" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_invalid_clip_id_is_named(tmp_path):
    with pytest.raises(PlanError, match=r"clip_id': null or not file-name safe .* row 3"):
        validate_plan(plan_table(4).append_column("clip_id", pa.array(["a", "b", "c", "../etc"])))


def test_second_writer_is_refused_and_a_fresh_lease_can_be_broken(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(6))
    out = tmp_path / "out"
    held = OutputLease(Output(str(out)))
    held.acquire()  # a run that is "still going" (or died without releasing)
    with pytest.raises(OutputLocked, match="--break-lock"):
        submit(null_run(path, out))
    summary = submit(null_run(path, out, break_lock=True))
    assert summary["status"] == "complete"
    assert not (out / "_birdgen" / "lease.json").exists()


def test_other_generation_settings_are_refused_on_an_existing_output(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    submit(null_run(path, tmp_path / "out"))
    with pytest.raises(SettingsMismatch, match="--steps: output has 25, this run 50"):
        submit(null_run(path, tmp_path / "out", generation=GenerationConfig(num_inference_steps=50)))
    stricter = GenerationConfig(quality=QualityThresholds(min_clap_score=0.3))
    with pytest.raises(
        SettingsMismatch, match=r"\(--min-clap: output has None, this run 0.3\)"
    ):  # not a dataclass dump
        submit(null_run(path, tmp_path / "out", generation=stricter))
    # Same generation settings, but real model audio would mix with the null generator's test tones.
    with pytest.raises(SettingsMismatch, match="'null' generator, this run uses 'audioldm2'"):
        submit(null_run(path, tmp_path / "out", generator="audioldm2"))


def test_a_run_that_committed_nothing_does_not_bind_the_output_to_its_settings(ray_local, tmp_path):
    """A wrong --model fails before any clip is made; the corrected rerun must not be refused."""
    path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = tmp_path / "out"
    wrong = GenerationConfig(model=str(tmp_path / "no-such-model"))
    with pytest.raises(ActorStartFailed, match="no-such-model"):
        submit(null_run(path, out, generator="audioldm2", generation=wrong, num_actors=1))
    assert not (out / "shards").exists() or not any((out / "shards").iterdir())
    summary = submit(null_run(path, out))  # other generator, other model: fine, nothing was made
    assert summary["status"] == "complete" and summary["generated_this_run"] == 4
    with pytest.raises(SettingsMismatch, match="--model"):  # now the output is bound
        submit(null_run(path, out, generator="null", generation=GenerationConfig(model="tiny")))


def test_failing_shard_is_recorded_run_goes_on_and_status_reports_it(ray_local, tmp_path):
    from birdgen_ray.index.status import output_status

    plan = plan_table(12, labels=("good", "good", "bad"))
    path = write_plan(tmp_path / "plan.parquet", plan)
    out = tmp_path / "out"
    summary = submit(
        null_run(path, out, shard_size=12, actor_env={"BIRDGEN_NULL_FAIL_LABEL": "bad"}, max_shard_attempts=2)
    )
    assert summary["status"] == "incomplete" and summary["failed_clips"] == 12 and summary["shard_retries"] == 1
    (failure,) = os.listdir(out / "failures")
    status = output_status(Output(str(out)))
    assert (status["planned"], status["done"], status["failed"], status["pending"]) == (12, 0, 12, 0)
    assert "injected failure" in status["failures"][0]["error"]

    fixed = submit(null_run(path, out, shard_size=12))  # the cause is gone: a rerun completes
    assert fixed["status"] == "complete" and not os.listdir(out / "failures")
    assert output_status(Output(str(out)))["done"] == 12


def test_actor_pool_sizing_auto_explicit_gpus_and_cpu_only():
    def run(gpus_per_actor, num_actors=None):
        return null_run("plan.parquet", "out", gpus_per_actor=gpus_per_actor, num_actors=num_actors)

    # A cluster that starts with no GPU worker: auto runs CPU actors; asking for GPUs asks anyway
    # (one actor, or --num-actors of them), so pending actors make the autoscaler add GPU nodes.
    assert size_actor_pool(run(None), gpus=0, cpus=8) == ActorSizing(4, 0.0, 2, explicit_gpus=False)
    assert size_actor_pool(run(1.0), gpus=0, cpus=8) == ActorSizing(1, 1.0, None, explicit_gpus=True)
    assert size_actor_pool(run(1.0, num_actors=8), gpus=2, cpus=8) == ActorSizing(8, 1.0, None, explicit_gpus=True)
    assert size_actor_pool(run(0.5), gpus=2, cpus=8).count == 4
    # Auto never asks for more than is there now; 0 forces CPU actors next to GPUs.
    assert size_actor_pool(run(None), gpus=2, cpus=8) == ActorSizing(2, 1.0, None, explicit_gpus=False)
    assert size_actor_pool(run(None, num_actors=8), gpus=2, cpus=8) == ActorSizing(2, 1.0, None, explicit_gpus=False)
    assert size_actor_pool(run(0), gpus=2, cpus=8) == ActorSizing(4, 0.0, 2, explicit_gpus=False)
    with pytest.raises(ValueError, match="gpus_per_actor must be >= 0"):
        run(-1.0)


@pytest.mark.parametrize("asked, gpus_each", [(1.0, 1), (0, 0), (None, 1)])
def test_actors_get_the_gpus_asked_for(ray_local, tmp_path, asked, gpus_each):
    path = write_plan(tmp_path / "plan.parquet", plan_table(8))
    shards = make_shards(validate_plan(pq.read_table(path)), 2)
    # One shard at a time per actor and slow clips, so the first actor to start cannot finish the run
    # alone before the second has started, however loaded the machine is.
    run = null_run(path, tmp_path / "out", gpus_per_actor=asked, max_inflight_per_actor=1, actor_env={SLEEP_ENV: "1.0"})
    result = drive(run, Output(str(tmp_path / "out")), shards)

    assert not result.failed and result.gpus_per_actor == gpus_each
    gpu_ids = [info["gpu_ids"] for info in result.actor_info]  # what Ray assigned inside each actor
    assert [len(ids) for ids in gpu_ids] == [gpus_each, gpus_each]
    assert len({i for ids in gpu_ids for i in ids}) == 2 * gpus_each  # one fake GPU each, not shared


def test_gpu_actors_that_cannot_be_placed_are_waited_for_out_loud_without_stalling_the_run(
    ray_local, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(drive_module, "PLACEMENT_REPORT_S", 0.2)
    path = write_plan(tmp_path / "plan.parquet", plan_table(16))
    # Three 1-GPU actors on the session's two GPUs and no autoscaler: the third never gets placed.
    run = null_run(path, tmp_path / "out", gpus_per_actor=1.0, num_actors=3, shard_size=2, actor_env={SLEEP_ENV: "0.1"})
    summary = submit(run)

    assert summary["status"] == "complete" and summary["done"] == 16
    assert (summary["actors"], summary["actors_started"], summary["settings"]["gpus_per_actor"]) == (3, 2, 1.0)
    said = " ".join(capsys.readouterr().err.split())
    assert "waiting for 1 GPU actor to be placed" in said and "(2 running; the cluster has 2 GPUs" in said
    # the session's Ray has no autoscaler: no promise that one adds nodes
    assert "this cluster has no autoscaler: they start only once GPU nodes join it" in said
    assert "autoscaler adds" not in said
    deadline = time.monotonic() + 30  # the waiting actor was cancelled: both GPUs are free again
    while ray_local.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray_local.available_resources().get("GPU", 0) == 2


def test_cli_gpus_per_actor_zero_runs_cpu_actors_and_a_negative_value_is_refused(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    base = ["submit", path, "--out", str(tmp_path / "out"), "--generator", "null", "--num-actors", "1", "--no-progress"]
    refused = CliRunner().invoke(app, base + ["--gpus-per-actor", "-1"])
    assert refused.exit_code == 2 and "--gpus-per-actor" in refused.output
    ran = CliRunner().invoke(app, base + ["--gpus-per-actor", "0"])
    assert ran.exit_code == 0, ran.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["gpus_per_actor"] == 0 and summary["gpu_seconds"] == 0


def test_a_committed_clip_id_with_edited_content_is_refused_by_row_and_column(ray_local, tmp_path):
    plan = validate_plan(plan_table(4))  # with the derived clip_id column, as `plan` writes it
    out = tmp_path / "out"
    submit(null_run(write_plan(tmp_path / "plan.parquet", plan), out))

    prompts = plan["prompt"].to_pylist()
    prompts[1] = "an edited prompt under the old clip_id"
    seeds = plan["seed"].to_pylist()
    seeds[3] += 100
    edited = plan.set_column(plan.schema.get_field_index("prompt"), "prompt", pa.array(prompts))
    edited = edited.set_column(edited.schema.get_field_index("seed"), "seed", pa.array(seeds, pa.int64()))
    with pytest.raises(PlanError) as err:
        submit(null_run(write_plan(tmp_path / "edited.parquet", edited), out))
    message = str(err.value)
    assert "column 'prompt': differs from the clip already generated under the same clip_id in row 1" in message
    assert "column 'seed': differs" in message and "row 3" in message
    assert pq.read_table(out / "plan.parquet")["prompt"].to_pylist() == plan["prompt"].to_pylist()  # untouched

    rederived = edited.drop_columns(["clip_id"])  # ids follow the content again: two new clips
    summary = submit(null_run(write_plan(tmp_path / "rederived.parquet", rederived), out))
    assert summary["generated_this_run"] == 2
    assert "an edited prompt under the old clip_id" in open_index(str(out))["prompt"].to_pylist()
