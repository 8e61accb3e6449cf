"""`--out s3://bucket/prefix` against a real S3-compatible server (moto in server mode) on 127.0.0.1.

The driver and the Ray actors (separate processes) talk to it over HTTP with s3fs, exactly as
they would to AWS or MinIO; nothing is mocked inside the client.
"""

from __future__ import annotations

import json

import boto3
import botocore.exceptions
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import RunConfig
from birdgen_ray.index.reader import open_index, read_clip, read_clip_bytes
from birdgen_ray.index.status import output_status
from birdgen_ray.io.storage import Output
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.schedule.lease import OutputLease, OutputLocked
from birdgen_ray.schedule.runner import submit
from tests.plans import plan_table, write_plan

BUCKET = "birds"


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    client.create_bucket(Bucket=BUCKET)
    options = {"endpoint_url": endpoint, "key": "test", "secret": "test", "client_kwargs": {"region_name": "us-east-1"}}
    yield client, options
    server.stop()


def null_run(plan_path, out, options, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=2, gpus_per_actor=0, shard_size=5, progress=False)
    defaults.update(kw)
    return RunConfig(plan_path=str(plan_path), out=out, storage_options=options, **defaults)


def keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(obj["Key"][len(prefix) + 1 :] for page in pages for obj in page.get("Contents", []))


def test_submit_to_s3_writes_a_readable_resumable_output(ray_local, s3_server, tmp_path):
    client, options = s3_server
    plan_path = write_plan(tmp_path / "plan.parquet", plan_table(17))
    out = f"s3://{BUCKET}/run-a"

    summary = submit(null_run(plan_path, out, options))
    assert summary["status"] == "complete" and summary["generated_this_run"] == 17

    stored = keys(client, "run-a")
    shard_keys = [k for k in stored if k.startswith("shards/")]
    assert len(shard_keys) == 2 * 4  # 17 clips / 5 per shard: a tar and an index each
    assert {"plan.parquet", "index.parquet", "summary.json", "_birdgen/run.json"} <= set(stored)
    assert "_birdgen/lease.json" not in stored  # released

    # Read back through s3 only, and compare with the same plan written to local disk.
    local = tmp_path / "local"
    submit(null_run(plan_path, str(local), {}))
    index = open_index(out, options)
    assert sorted(index["clip_id"].to_pylist()) == sorted(open_index(str(local))["clip_id"].to_pylist())
    local_rows = {r["clip_id"]: r for r in open_index(str(local)).to_pylist()}
    for row in index.to_pylist():
        assert read_clip_bytes(out, row, options) == read_clip_bytes(str(local), local_rows[row["clip_id"]])
    audio, rate = read_clip(out, index["clip_id"][0].as_py(), options)
    assert rate == 32_000 and len(audio) == index["num_samples"][0].as_py()

    status = output_status(Output(out, options))
    assert (status["planned"], status["done"], status["failed"], status["pending"], status["shards"]) == (
        17,
        17,
        0,
        0,
        4,
    )

    result = CliRunner().invoke(app, ["status", out, "--json", "--storage-options", json.dumps(options)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["done"] == 17

    again = submit(null_run(plan_path, out, options))
    assert again["generated_this_run"] == 0 and again["already_done_before_run"] == 17
    assert keys(client, "run-a") == stored  # nothing rewritten away, nothing added
    assert again["status"] == "complete"


def test_s3_lock_is_an_exclusive_create_and_refuses_a_second_writer(ray_local, s3_server, tmp_path):
    client, options = s3_server
    plan_path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = f"s3://{BUCKET}/run-b"

    holder = OutputLease(Output(out, options))
    holder.acquire()
    # Our exclusive create is refused by the server itself for an existing key (a conditional PUT,
    # If-None-Match: *), which is what makes the lock exclusive between machines.
    assert Output(out, options).create_exclusive("_birdgen/probe.json", b"{}") is True
    assert Output(out, options).create_exclusive("_birdgen/probe.json", b"{}") is False
    client.delete_object(Bucket=BUCKET, Key="run-b/_birdgen/probe.json")
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=BUCKET, Key="run-b/_birdgen/lease.json", Body=b"{}", IfNoneMatch="*")

    with pytest.raises(OutputLocked, match=rf"run {holder.run_id}.*expires in .*--break-lock"):
        submit(null_run(plan_path, out, options))
    assert "plan.parquet" not in keys(client, "run-b")  # refused before writing anything

    summary = submit(null_run(plan_path, out, options, break_lock=True))
    assert summary["status"] == "complete"
    assert "_birdgen/lease.json" not in keys(client, "run-b")

    first, second = OutputLease(Output(out, options)), OutputLease(Output(out, options), break_lock=True)
    first.acquire()
    second.acquire()  # takes the lock over
    first.release()  # a holder whose lock was taken over must not remove the new holder's
    assert (
        json.loads(client.get_object(Bucket=BUCKET, Key="run-b/_birdgen/lease.json")["Body"].read())["run_id"]
        == second.run_id
    )
    second.release()
    assert "_birdgen/lease.json" not in keys(client, "run-b")


def test_plan_on_s3_is_read_with_the_same_storage_options(ray_local, s3_server, tmp_path):
    client, options = s3_server
    local_plan = write_plan(tmp_path / "plan.parquet", plan_table(6))
    client.upload_file(local_plan, BUCKET, "plans/plan.parquet")
    summary = submit(null_run(f"s3://{BUCKET}/plans/plan.parquet", f"s3://{BUCKET}/run-c", options))
    assert summary["status"] == "complete" and summary["done"] == 6

    with pytest.raises(PlanError, match="file not found"):
        submit(null_run(f"s3://{BUCKET}/plans/missing.parquet", f"s3://{BUCKET}/run-d", options))
