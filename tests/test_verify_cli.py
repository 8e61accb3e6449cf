"""`birdgen-ray verify`: --audio on real recordings, OUT as Ray CPU tasks (once, resumable), no extra."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.io.layout import committed_shard_ids, species_path
from tests import fault_hooks
from tests.made_outputs import birdclef_plan, null_output
from tests.real_audio import AUDIO, birdnet_or_skip, needs_real_audio
from tests.without_packages import cli_without

pytestmark = pytest.mark.slow  # BirdNET and CLI subprocesses

birdnet_or_skip()
BIRDS = AUDIO / "opensoundscape-birds_10s.wav"


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": fault_hooks.PYTHONPATH, **extra}  # the session's token auth (conftest.py)


@needs_real_audio
def test_audio_gives_a_per_window_table_and_the_same_as_json():
    args = ["verify", "--audio", str(BIRDS), "--audio", str(AUDIO / "opensoundscape-great_plains_toad.wav")]
    args += ["--species", "Leiothlypis peregrina"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    birds, toad = json.loads(result.stdout)
    assert [w["start_s"] for w in birds["windows"]] == [0.0, 3.0, 6.0, 9.0]
    assert birds["species"] == "Leiothlypis peregrina_Tennessee Warbler"
    assert birds["species_confidence"] == pytest.approx(0.79, abs=0.03)
    assert birds["species_confidence"] == max(w["species_confidence"] for w in birds["windows"])
    assert len(toad["windows"]) == 15 and toad["species_top1_confidence"] < 0.5
    assert birds["verifier"] == "birdnet-2.4-fp32"

    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    # shown as people read it; the JSON above keeps BirdNET's own label
    assert "Tennessee Warbler (Leiothlypis peregrina)" in table.stdout and "0.791" in table.stdout
    assert "peregrina_Tennessee" not in table.stdout and "CC BY-NC-SA 4.0" in table.stdout


@needs_real_audio
def test_litert_s_info_line_stays_out_of_the_output():
    cli = [sys.executable, "-c", "from birdgen_ray.cli import app; app()"]
    done = subprocess.run(
        [*cli, "verify", "--audio", str(BIRDS)], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stdout + done.stderr and "INFO:" not in done.stdout + done.stderr


@needs_real_audio
def test_an_unknown_species_or_unreadable_file_is_one_error_line(tmp_path):
    result = CliRunner().invoke(app, ["verify", "--audio", str(BIRDS), "--species", "Leiothlypis peregrinus"])
    assert result.exit_code == 2 and "not a BirdNET v2.4 label" in result.output
    bad = tmp_path / "bad.ogg"
    bad.write_bytes(b"not audio")
    result = CliRunner().invoke(app, ["verify", "--audio", str(bad)])
    assert result.exit_code == 2 and f"{bad}: not a readable audio file" in result.output
    result = CliRunner().invoke(app, ["verify"])
    assert result.exit_code == 2 and "either OUT or --audio" in result.output


@pytest.mark.parametrize("command", ["verify", "submit"])
def test_without_the_extra_the_command_says_how_to_install_it_and_exits_2(tmp_path, command):
    from tests.plans import plan_table, write_plan

    plan = write_plan(tmp_path / "plan.parquet", plan_table(2))
    argv = {
        "verify": ["verify", "--audio", str(BIRDS)],
        "submit": ["submit", plan, "--out", str(tmp_path / "out"), "--model", "tiny", "--verify", "birdnet"],
    }[command]
    result = cli_without({"ai_edge_litert"}, [str(a) for a in argv])
    assert result.returncode == 2, result.stderr
    assert "install birdgen-ray[birdnet]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


def _sidecars(out) -> dict[str, float]:
    """sidecar file -> mtime, for every committed shard that has one."""
    paths = [out / species_path(s) for s in committed_shard_ids_local(out)]
    return {p.name: p.stat().st_mtime_ns for p in paths if p.exists()}


def committed_shard_ids_local(out):
    from birdgen_ray.io.storage import Output

    return committed_shard_ids(Output(str(out)))


def test_verify_out_writes_each_sidecar_once_and_a_kill_halfway_loses_and_duplicates_nothing(tmp_path):
    plan = birdclef_plan(tmp_path / "plan", n_classes=2, target=8, duration_s=1.0)
    out = null_output(tmp_path, plan, shard_size=4)  # several shards of null-generator audio
    shards = committed_shard_ids_local(out)
    assert len(shards) >= 3
    cli = [sys.executable, "-c", "from birdgen_ray.cli import app; app()", "verify", str(out), "--json"]
    env = _env(BIRDGEN_VERIFY_DELAY_S="1.5")

    # 1. killed once the first sidecar is there
    proc = subprocess.Popen([*cli], env={**env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 150  # a cold Ray start on a busy 2-core box
    while not _sidecars(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    first = _sidecars(out)
    assert 1 <= len(first) < len(shards), f"the kill should land halfway: {proc.stderr.read().decode()[-2000:]}"

    # 2. the rerun (taking over the dead run's lock) does only the rest
    done = subprocess.run([*cli, "--break-lock"], env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["verified"] == len(shards) - summary["already_verified"]
    second = _sidecars(out)
    assert set(second) == {species_path(s).split("/")[-1] for s in shards}
    assert {name: second[name] for name in first} == first  # nothing written twice

    # 3. every clip once, with its species columns and an embedding
    index = pq.read_table(out / "index.parquet")
    tables = [pq.read_table(out / "shards" / name) for name in sorted(second)]
    ids = [i for t in tables for i in t["clip_id"].to_pylist()]
    assert sorted(ids) == sorted(index["clip_id"].to_pylist())
    assert all(t.schema.field("embedding").type.list_size == 1024 for t in tables)
    assert {v for t in tables for v in t["verifier"].to_pylist()} == {"birdnet-2.4-fp32"}
    assert all(0.0 <= c <= 1.0 for t in tables for c in t["species_top1_confidence"].to_pylist())

    # 4. the report reads the sidecars; summary.json names the verifier and its licence
    from birdgen_ray.io.storage import Output
    from birdgen_ray.report.collect import collect

    species = collect(Output(str(out)), per_class=0).species
    assert species.clips == index.num_rows and species.verifiers == ["birdnet-2.4-fp32"]
    assert sum(g.clips for g in species.per_class) == index.num_rows
    record = json.loads((out / "summary.json").read_text())["species_verification"]
    assert "CC BY-NC-SA 4.0" in record["verifier_licence"] and record["verifier"] == "birdnet-2.4-fp32"

    # 5. a rerun adds nothing
    again = CliRunner().invoke(app, ["verify", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["verified"] == 0
    assert _sidecars(out) == second
