"""Unattended runs: a full disk, bad stores and corrupt plans end in one line (exit 2); `status`
tells a running, finished, interrupted and dead run apart; a placement timeout ends a run.

Real CLI subprocesses or CliRunner on the session's local Ray with the null generator; the S3
server is moto on 127.0.0.1; the full disk is a real 3 MB tmpfs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import RunConfig
from birdgen_ray.index.run_status import run_line
from birdgen_ray.io.layout import LEASE_FILE, PROGRESS_FILE
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.plan.validate import read_plan
from birdgen_ray.schedule.drive import PlacementTimeout
from birdgen_ray.schedule.runner import submit
from tests import fault_hooks
from tests.fault_hooks import SLEEP_ENV
from tests.plans import plan_table, write_plan
from tests.test_s3 import BUCKET, s3_server  # noqa: F401 - the moto server fixture

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from birdgen_ray.cli import app; app()"]


def flat(text: str) -> str:
    return " ".join(text.split())


def null_args(plan: str, out: str, *extra: str) -> list[str]:
    return ["submit", plan, "--out", out, "--generator", "null", "--gpus-per-actor", "0", "--num-actors", "1",
            "--shard-size", "4", "--no-progress", *extra]  # fmt: skip


def run_cli(args: list[str], timeout: float = 120, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": fault_hooks.PYTHONPATH, **env}  # the session's token auth (conftest.py)
    return subprocess.run([*CLI, *args], env=environ, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_leaves_no_empty_lease_and_a_rerun_resumes(ray_local, tmp_path, tiny_disk):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(60, durations=(2.0,)))  # ~7.7 MB of WAVs: too much
    out = str(tiny_disk / "out")
    address = ["--address", ray_local.get_runtime_context().gcs_address]
    first = run_cli(null_args(plan, out, *address, "--max-shard-attempts", "1"))
    assert first.returncode in (1, 2), first.stderr
    lines = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    if first.returncode == 2:
        assert len(lines) == 1 and "no space left on the device" in lines[0] and out in lines[0], first.stderr
        assert "Traceback" not in first.stderr
    else:  # the driver's own writes fit; every shard that did not is recorded as failed
        assert "No space left on device" in first.stderr
    again = run_cli(null_args(plan, out, *address))  # still full: a second try on a full disk
    assert again.returncode in (1, 2) and "Traceback" not in again.stderr, again.stderr
    lease = Path(out) / LEASE_FILE
    assert not lease.exists() or lease.stat().st_size > 0  # never a 0-byte lease

    # free space: remount bigger, then the same command resumes without --break-lock
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_disk)], check=True)
    leftovers = [p for p in Path(out).rglob("*") if ".tmp-" in p.name]
    done = run_cli(null_args(plan, out, *address))
    assert done.returncode == 0, done.stderr
    assert not [p for p in Path(out).rglob("*") if ".tmp-" in p.name], leftovers
    assert json.loads((Path(out) / "summary.json").read_text())["done"] == 60


def test_s3_unreachable_missing_bucket_and_wiped_mid_run_are_one_line_errors(ray_local, s3_server, tmp_path):  # noqa: F811
    client, options = s3_server
    plan = write_plan(tmp_path / "plan.parquet", plan_table(8))
    dead = {
        **options,
        "endpoint_url": "http://127.0.0.1:9",
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
    }
    runner = CliRunner()
    for opts, uri, expected in [
        (dead, f"s3://{BUCKET}/x", "cannot reach the object store for s3://birds/x"),
        (options, "s3://no-such-bucket/x", "the bucket of s3://no-such-bucket/x does not exist"),
    ]:
        result = runner.invoke(app, null_args(plan, uri, "--storage-options", json.dumps(opts)))
        assert result.exit_code == 2, result.output
        assert expected in flat(result.output) and "Traceback" not in result.output, result.output

    # wiped mid-run: the bucket's objects are deleted while the run goes on
    out = f"s3://{BUCKET}/wiped"
    wiper_done = []

    def wipe() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = client.list_objects_v2(Bucket=BUCKET, Prefix="wiped/shards/").get("KeyCount", 0)
            if listed:
                for obj in client.list_objects_v2(Bucket=BUCKET, Prefix="wiped/").get("Contents", []):
                    client.delete_object(Bucket=BUCKET, Key=obj["Key"])
                wiper_done.append(True)
                return
            time.sleep(0.05)

    import threading

    thread = threading.Thread(target=wipe, daemon=True)
    thread.start()
    run = RunConfig(
        plan_path=plan,
        out=out,
        storage_options=options,
        generator="null",
        num_actors=1,
        gpus_per_actor=0,
        shard_size=2,
        progress=False,
        lease_renew_s=0.2,
        actor_env={SLEEP_ENV: "0.5"},  # 1 s a shard: the run outlasts the wipe even on a loaded machine
    )
    with pytest.raises(Exception) as err:
        submit(run)
    thread.join()
    assert wiper_done
    assert "lease" in str(err.value) and "removing it" in str(err.value) or "expired" in str(err.value)


def test_every_corruption_a_checksum_can_catch_is_a_named_error(tmp_path):
    good = tmp_path / "plan.parquet"
    table = plan_table(24)
    pq.write_table(table, good, compression="zstd", write_page_checksum=True)
    data = good.read_bytes()
    footer_len = int.from_bytes(data[-8:-4], "little")
    pages_end = len(data) - 8 - footer_len  # page headers and pages: what the checksums guard
    expected = read_plan(str(good))
    silent = []
    for offset in range(4, pages_end, max(1, pages_end // 200)):
        for bit in (0, 5):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            path = tmp_path / "bad.parquet"
            path.write_bytes(bytes(bad))
            try:
                got = read_plan(str(path))
            except PlanError as exc:
                assert "bad.parquet" in str(exc)
                continue
            if not got.equals(expected):
                silent.append(offset)
    assert not silent, f"bit flips at {silent} changed the plan silently"

    # a plan written without checksums (pandas, older writers) still reads
    plain = io.BytesIO()
    pq.write_table(table, plain)
    (tmp_path / "plain.parquet").write_bytes(plain.getvalue())
    assert read_plan(str(tmp_path / "plain.parquet")).num_rows == 24


def test_a_label_with_a_control_character_is_refused(tmp_path):
    table = plan_table(3)
    table = table.set_column(0, "label", [["ok", "bad\nlabel", "tab\there"]])
    with pytest.raises(PlanError, match=r"control character.*rows 1, 2"):
        read_plan(write_plan(tmp_path / "plan.parquet", table))


def test_status_of_running_finished_interrupted_and_dead_runs(ray_local, tmp_path):
    now = time.time()
    lease = {"token": "abc", "ttl_s": 300.0}
    running = {
        "run_id": "abc",
        "state": "running",
        "planned": 30000,
        "done": 12345,
        "already_done": 0,
        "clips_per_second": 71.0,
        "eta_s": 220.0,
        "heartbeat": now - 4,
        "in_flight": 0,
    }
    assert run_line(running, lease, now) == "running, 41% 12,345/30,000, 71 clips/s, ETA 3 m 40 s, heartbeat 4 s ago"
    dead = {**running, "heartbeat": now - 420}
    assert run_line(dead, lease, now) == "holder lost: no heartbeat for 7 min; the next run takes over"
    assert run_line(running, None, now).startswith("holder lost")  # its lease was taken over or removed

    # a real run, then a real Ctrl-C'd one
    plan = write_plan(tmp_path / "plan.parquet", plan_table(8))
    out = tmp_path / "out"
    submit(
        RunConfig(
            plan_path=plan, out=str(out), generator="null", num_actors=1, gpus_per_actor=0, shard_size=4, progress=False
        )
    )
    result = CliRunner().invoke(app, ["status", str(out)])
    assert "finished at" in flat(result.output) and "8/8 clips, 8 new" in flat(result.output), result.output

    bigger = write_plan(tmp_path / "plan2.parquet", plan_table(40))
    address = ["--address", ray_local.get_runtime_context().gcs_address]
    driver = subprocess.Popen(
        # 3 s a clip: the 32 new clips outlast the status call below even on a heavily loaded machine
        [*CLI, *null_args(bigger, str(out), *address, "--actor-env", f"{SLEEP_ENV}=3.0")],
        env={**os.environ, "PYTHONPATH": fault_hooks.PYTHONPATH},
        stderr=subprocess.PIPE,
        text=True,
        # Python's own SIGINT handler in the child: a test run in a background job inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            progress = json.loads((out / PROGRESS_FILE).read_text()) if (out / PROGRESS_FILE).exists() else {}
            if progress.get("state") == "running" and progress.get("planned") == 40:
                break
            time.sleep(0.1)
        live = CliRunner().invoke(app, ["status", str(out)])
        assert "running, " in flat(live.output) and "heartbeat" in flat(live.output), live.output
        driver.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = driver.communicate(timeout=60)
    finally:
        driver.kill()
    interrupted = CliRunner().invoke(app, ["status", str(out)])
    said = flat(interrupted.output)
    assert "interrupted at" in said and "run the same command to resume" in said, (said, driver.returncode, stderr)


def test_a_noop_rerun_keeps_the_last_productive_runs_throughput(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(8))
    run = RunConfig(
        plan_path=plan,
        out=str(tmp_path / "out"),
        generator="null",
        num_actors=1,
        gpus_per_actor=0,
        shard_size=4,
        progress=False,
    )
    first = submit(run)
    again = submit(run)
    assert again["generated_this_run"] == 0 and [h["run_id"] for h in again["history"]] == [
        first["run_id"],
        again["run_id"],
    ]
    assert again["last_productive_run"]["clips_per_second"] == first["clips_per_second"] > 0
    st = json.loads(CliRunner().invoke(app, ["status", str(tmp_path / "out"), "--json"]).output)
    assert st["last_run"]["run_id"] == first["run_id"] and st["last_run"]["clips_per_second"] > 0


def test_the_placement_timeout_fires_and_releases_the_lease(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = tmp_path / "out"
    run = RunConfig(plan_path=plan, out=str(out), generator="null", num_actors=1, gpus_per_actor=8.0,
                    progress=False, placement_timeout_s=2.0)  # fmt: skip  # 8 GPUs: the session Ray has 2
    started = time.monotonic()
    with pytest.raises(PlacementTimeout, match="placement-timeout-s 2.*no autoscaler"):
        submit(run)
    assert time.monotonic() - started < 60
    assert not (out / LEASE_FILE).exists()
    assert json.loads((out / PROGRESS_FILE).read_text())["state"] == "failed"
