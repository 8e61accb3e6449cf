"""Damaged shards are named and repaired: a truncated tar shows in `status` (sizes) and `check`
(hashes), a flipped byte in `check`; readers refuse the damaged clips in one line; the same submit
makes exactly the damaged clips again, byte-identical (null generator), on local disk and on S3.
A corrupt index.parquet is rebuilt from the shard indexes.

The session's real local Ray, the null generator, moto on 127.0.0.1 for S3.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.config import RunConfig
from birdgen_ray.index.integrity import DamagedClip, ShardDamage
from birdgen_ray.index.reader import open_index, read_clip_bytes
from birdgen_ray.io.layout import shard_paths
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.check import check_output
from birdgen_ray.schedule.runner import submit
from birdgen_ray.write.repair import record_damage
from tests.plans import plan_table, write_plan
from tests.test_s3 import BUCKET, s3_server  # noqa: F401 - the moto server fixture

CLIPS = 12


def null_run(plan_path, out, options=None, **kw) -> RunConfig:
    defaults = dict(generator="null", num_actors=1, gpus_per_actor=0, shard_size=4, progress=False)
    return RunConfig(plan_path=str(plan_path), out=out, storage_options=options or {}, **{**defaults, **kw})


def every_clip(output: Output) -> dict[str, bytes]:
    return {row["clip_id"]: read_clip_bytes(output, row) for row in open_index(output).to_pylist()}


def damage(output: Output) -> tuple[str, str, set[str]]:
    """Truncate one shard to half and flip one byte of one clip in another; returns
    (truncated shard, flipped shard, the clip ids whose bytes are no longer theirs)."""
    rows = open_index(output).to_pylist()
    shards = sorted({row["shard"] for row in rows})
    cut, flipped = shards[0], shards[1]
    data = output.read_bytes(cut)
    output.write_bytes(cut, data[: len(data) // 2])
    lost = {r["clip_id"] for r in rows if r["shard"] == cut and r["offset"] + r["size"] > len(data) // 2}
    victim = next(r for r in rows if r["shard"] == flipped)
    data = bytearray(output.read_bytes(flipped))
    data[victim["offset"] + victim["size"] - 7] ^= 0x10  # a sample, not the header: still a valid WAV
    output.write_bytes(flipped, bytes(data))
    return cut, flipped, lost | {victim["clip_id"]}


def assert_restored(output: Output, before: dict[str, bytes], summary: dict, damaged: set[str]) -> None:
    assert summary["status"] == "complete" and summary["generated_this_run"] == len(damaged), summary
    index = open_index(output)
    ids = index["clip_id"].to_pylist()
    assert len(ids) == len(set(ids)) == CLIPS  # exactly once
    assert every_clip(output) == before  # bit-identical: the null generator is deterministic
    assert check_output(output).damaged == []


def test_a_truncated_and_a_flipped_shard_are_named_refused_and_restored(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(CLIPS))
    out = str(tmp_path / "out")
    submit(null_run(plan, out))
    output = Output(out)
    before = every_clip(output)
    assert all(row["sha256"] and row["shard_bytes"] for row in pq.read_table(f"{out}/index.parquet").to_pylist())
    cut, flipped, damaged = damage(output)
    runner = CliRunner()

    status = runner.invoke(app, ["status", out])
    assert status.exit_code == 0 and f"damaged {cut}" in status.output and flipped not in status.output
    checked = runner.invoke(app, ["check", out])
    assert checked.exit_code == 1, checked.output
    assert f"damaged {cut}" in checked.output and f"damaged {flipped}" in checked.output
    assert flipped in runner.invoke(app, ["status", out]).output  # check's record

    bad_id = sorted(damaged)[0]
    with pytest.raises(DamagedClip, match=bad_id):
        every_clip(output)
    extract = runner.invoke(app, ["extract", out, bad_id, "--dest", str(tmp_path / "x")])
    assert extract.exit_code == 2 and extract.output.count("\n") == 1 and "check" in extract.output, extract.output
    export = runner.invoke(app, ["export", out, str(tmp_path / "export")])
    assert export.exit_code == 2 and export.output.count("\n") == 1 and "is corrupt (clip" in export.output, (
        export.output
    )

    assert_restored(output, before, submit(null_run(plan, out)), damaged)
    assert runner.invoke(app, ["check", out]).exit_code == 0
    assert "damaged" not in runner.invoke(app, ["status", out]).output


def test_on_s3_the_same_check_and_submit_restore_every_clip(ray_local, s3_server, tmp_path):  # noqa: F811
    _, options = s3_server
    plan = write_plan(tmp_path / "plan.parquet", plan_table(CLIPS))
    out = f"s3://{BUCKET}/damaged"
    submit(null_run(plan, out, options))
    output = Output(out, options)
    before = every_clip(output)
    cut, flipped, damaged = damage(output)
    found = check_output(output).damaged
    assert sorted(d.shard_id for d in found) == sorted(shard_paths_id(s) for s in (cut, flipped))
    assert sum(len(d.bad_clip_ids) for d in found) == len(damaged)
    assert_restored(output, before, submit(null_run(plan, out, options)), damaged)


def shard_paths_id(shard_rel: str) -> str:
    shard_id = shard_rel.rsplit("/", 1)[-1].removesuffix(".tar")
    assert shard_paths(shard_id)[0] == shard_rel
    return shard_id


def test_a_corrupt_index_parquet_is_rebuilt_from_the_shard_indexes_saying_so(ray_local, tmp_path, caplog):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(CLIPS))
    out = tmp_path / "out"
    submit(null_run(plan, str(out)))
    before = every_clip(Output(str(out)))
    index = out / "index.parquet"
    index.write_bytes(index.read_bytes()[:-100])  # its footer cut short
    stale = ShardDamage("shard-gone", "recorded by a check, then the shard was removed by hand")
    record_damage(Output(str(out)), stale)  # a record whose shard is not there is dropped, not an error
    summary = submit(null_run(plan, str(out)))
    assert summary["status"] == "complete" and summary["generated_this_run"] == 0
    said = [r.getMessage() for r in caplog.records if "index.parquet is corrupt" in r.getMessage()]
    assert len(said) == 1 and "rebuilt from the shard indexes" in said[0]
    assert every_clip(Output(str(out))) == before
    assert not list((out / "_birdgen" / "damaged").iterdir())
