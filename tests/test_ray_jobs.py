"""A real Ray Jobs round trip: a Ray head on 127.0.0.1 with its job server, `jobs/submit_job.py`
submitting `birdgen-ray submit` on the tiny model, and a duplicate submission refused.

The head is started here with `ray start --block` in its own session, separate from the in-process
Ray of conftest's `ray_local` (not used here). Teardown stops only this head's process tree, by pid:
`ray stop` would kill every Ray on the machine, other test sessions included.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from birdgen_ray.schedule.job_id import submission_id

REPO = Path(__file__).resolve().parents[1]
SUBMIT_JOB = REPO / "jobs" / "submit_job.py"
VENV_BIN = Path(sys.executable).parent
HEAD_START_TIMEOUT_S = 90
JOB_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """The session's token auth (conftest.py), no usage stats, this venv's tools first."""
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _authorized(url: str) -> urllib.request.Request:
    """A request with the session's Ray token (the job server answers 401 without it)."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})


def _stop_tree(head: subprocess.Popen) -> list[psutil.Process]:
    """SIGTERM the `ray start --block` process, then SIGKILL whatever of its tree is left."""
    try:
        tree = psutil.Process(head.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=10)
    _, alive = psutil.wait_procs(tree, timeout=10)
    for proc in alive:
        proc.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    return alive


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with a job server on 127.0.0.1; yields the job server address."""
    dashboard_port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="bgr-", dir="/tmp")  # short: Ray's unix sockets live under it
    log_path = Path(temp_dir) / "head.log"
    command = [
        str(VENV_BIN / "ray"), "start", "--head", "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={_free_port()}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--ray-client-server-port={_free_port()}",
        "--num-cpus=2",
        "--num-gpus=0",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        head = subprocess.Popen(command, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited {head.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(_authorized(f"{address}/api/version"), timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"job server not up in {HEAD_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield address
    finally:
        left = _stop_tree(head)
        assert not left, f"Ray processes still running after teardown: {[p.pid for p in left]}"


def _write_plan(path: Path, rows: int = 4) -> pa.Table:
    table = pa.table(
        {
            "label": [f"species{i % 2}" for i in range(rows)],
            "prompt": [f"a bird call, recording {i}" for i in range(rows)],
            "seed": pa.array(range(rows), pa.int64()),
            "duration_s": [1.0] * rows,
        }
    )
    pq.write_table(table, path)
    return table


def _submit(plan: Path, out: Path, address: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            str(SUBMIT_JOB),
            str(plan),
            "--out",
            str(out),
            "--model",
            "tiny",
            "--address",
            address,
            "--",
            "--steps",
            "2",
        ],  # the tiny model on CPU: few denoising steps keep the job short
        env=_env(),
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT_S,
    )


@pytest.mark.slow  # a Ray head, a job, the tiny model on CPU: about a minute on 2 cores
def test_ray_job_generates_output_and_refuses_duplicate(ray_head, tmp_path):
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors

    plan_path, out = tmp_path / "plan.parquet", tmp_path / "out"
    plan = _write_plan(plan_path)
    job_id = submission_id(str(plan_path), str(out))

    first = _submit(plan_path, out, ray_head)
    assert first.returncode == 0, f"stdout:\n{first.stdout[-4000:]}\nstderr:\n{first.stderr[-4000:]}"

    client = JobSubmissionClient(ray_head)
    info = client.get_job_info(job_id)
    assert str(info.status) == "SUCCEEDED"
    assert info.entrypoint.startswith("birdgen-ray submit ")
    assert info.runtime_env["env_vars"]["TOKENIZERS_PARALLELISM"] == "false"

    # The job's driver joined this cluster (plain ray.init(), no resources): its generator actors
    # ran here, under the driver's job id (a driver that started its own local Ray would leave none).
    actors = list_actors(address=ray_head, filters=[("job_id", "=", info.job_id)])
    assert actors, "the job's driver ran no actors on this cluster"

    # The output: every planned clip, its WAV bytes found from its index row alone.
    index = pq.read_table(out / "index.parquet")
    assert index.num_rows == plan.num_rows
    assert sorted(index["prompt"].to_pylist()) == sorted(plan["prompt"].to_pylist())
    for row in index.to_pylist():
        settings = json.loads(row["settings"])  # what the job ran with: --model and the passed-through --steps
        assert (settings["model"], settings["num_inference_steps"]) == ("tiny", 2)
        with open(out / row["shard"], "rb") as shard:
            shard.seek(row["offset"])
            audio, rate = sf.read(io.BytesIO(shard.read(row["size"])))
        assert rate == row["sample_rate"]
        assert len(audio) == row["num_samples"] == round(row["duration_s"] * rate)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    index_bytes = (out / "index.parquet").read_bytes()

    # Same plan, same output: same id, refused by the job server; nothing new ran or was written.
    second = _submit(plan_path, out, ray_head)
    assert second.returncode != 0
    assert "already exists" in second.stdout + second.stderr
    assert job_id in second.stderr
    assert [j.submission_id for j in client.list_jobs()].count(job_id) == 1
    assert (out / "index.parquet").read_bytes() == index_bytes


# --- the submission id and the command, without a cluster ----------------------------------------


def test_submission_id_follows_plan_content_and_output(tmp_path):
    plan = tmp_path / "plan.parquet"
    _write_plan(plan)
    copy = tmp_path / "elsewhere" / "plan.parquet"
    copy.parent.mkdir()
    copy.write_bytes(plan.read_bytes())
    grown = tmp_path / "grown.parquet"
    _write_plan(grown, rows=5)

    base = submission_id(str(plan), "s3://birds/out")
    assert submission_id(str(copy), "s3://birds/out/") == base  # same bytes, same output spelled differently
    assert submission_id(str(plan), "s3://birds/other") != base
    assert submission_id(str(grown), "s3://birds/out") != base
    assert submission_id(str(plan), str(tmp_path / "out")) == submission_id(str(plan), str(tmp_path / "out") + "/")
    assert submission_id(str(plan), "s3://birds/out", attempt=2) == base + "-r2"
    for job_id in (base, base + "-r2"):
        # a Ray submission id and a RayJob name at once: DNS-1035 label, at most 47 characters
        assert len(job_id) <= 47 and job_id[0].isalpha() and set(job_id) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    with pytest.raises(ValueError):
        submission_id(str(plan), "s3://birds/out", attempt=0)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        submission_id(str(tmp_path / "missing.parquet"), "s3://birds/out")


def test_submit_job_refuses_env_without_name_or_equals(tmp_path):
    plan = tmp_path / "plan.parquet"
    _write_plan(plan)
    for bad in ("NOEQUALS", "=value"):
        result = subprocess.run(
            [sys.executable, str(SUBMIT_JOB), str(plan), "--out", "s3://birds/out", "--env", bad, "--dry-run"],
            env=_env(), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode != 0 and f"--env expects NAME=VALUE, got {bad!r}" in result.stderr
        assert "job" not in result.stdout


def test_submit_job_command_carries_id_runtime_env_and_entrypoint(tmp_path):
    import shlex

    plan = tmp_path / "plan.parquet"
    _write_plan(plan)
    result = subprocess.run(
        [sys.executable, str(SUBMIT_JOB), str(plan), "--out", "s3://birds/out/", "--model", "tiny",
         "--address", "http://10.0.0.1:8265", "--env", "HF_HOME=/cache", "--dry-run", "--", "--num-actors", "3"],
        env=_env(), capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    words = shlex.split(result.stdout)
    assert words[1:3] == ["job", "submit"]
    options, entrypoint = words[3 : words.index("--")], words[words.index("--") + 1 :]
    assert options[options.index("--address") + 1] == "http://10.0.0.1:8265"
    assert options[options.index("--submission-id") + 1] == submission_id(str(plan), "s3://birds/out")
    runtime_env = json.loads(options[options.index("--runtime-env-json") + 1])
    assert runtime_env == {
        "env_vars": {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", "HF_HOME": "/cache"}
    }
    assert entrypoint == [
        "birdgen-ray", "submit", str(plan), "--out", "s3://birds/out", "--model", "tiny", "--no-progress",
        "--num-actors", "3",
    ]  # fmt: skip


@pytest.mark.slow  # an S3 server
def test_submission_id_of_a_plan_in_object_storage(tmp_path):
    """The id of an s3:// plan hashes the same bytes as the local file (moto's S3 on 127.0.0.1)."""
    import boto3
    from moto.server import ThreadedMotoServer

    plan = tmp_path / "plan.parquet"
    _write_plan(plan)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        env = {**_env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        s3.create_bucket(Bucket="birds")
        s3.upload_file(str(plan), "birds", "plans/plan.parquet")
        result = subprocess.run(
            [sys.executable, str(SUBMIT_JOB), "s3://birds/plans/plan.parquet", "--out", "s3://birds/out", "--print-id"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == submission_id(str(plan), "s3://birds/out")
