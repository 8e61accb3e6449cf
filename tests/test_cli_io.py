"""CLI edges users hit: extract, malformed --storage-options, object-storage URIs where a local path is needed."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from typer.testing import CliRunner

from birdgen_ray import open_index
from birdgen_ray.cli import app
from tests.made_outputs import null_output
from tests.plans import plan_table, write_plan

runner = CliRunner()


@pytest.fixture(scope="module")
def made_out(ray_local, tmp_path_factory):
    return str(null_output(tmp_path_factory.mktemp("cli"), plan_table(5)))


def test_extract_writes_the_clips_wav_files_and_names_unknown_ids(made_out, tmp_path):
    ids = open_index(made_out)["clip_id"].to_pylist()[:2]
    result = runner.invoke(app, ["extract", made_out, *ids, "--dest", str(tmp_path / "clips")])
    assert result.exit_code == 0, result.output
    for clip_id in ids:
        info = sf.info(str(tmp_path / "clips" / f"{clip_id}.wav"))
        assert info.samplerate == 32_000 and info.subtype == "PCM_16"

    missing = runner.invoke(app, ["extract", made_out, ids[0], "no-such-clip", "--dest", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no-such-clip" in missing.output
    assert not (tmp_path / "x").exists()  # nothing written when an id is wrong


@pytest.mark.parametrize("command", ["submit", "status", "extract", "report", "export"])
@pytest.mark.parametrize("bad", ["{not json", "[1, 2]"])
def test_malformed_storage_options_are_named_not_a_traceback(made_out, tmp_path, command, bad):
    args = {
        "submit": ["submit", "examples/train_metadata.csv", "--out", str(tmp_path / "s"), "--generator", "null"],
        "status": ["status", made_out],
        "extract": ["extract", made_out, "some-id"],
        "report": ["report", made_out, "--dest", str(tmp_path / "r")],
        "export": ["export", made_out, str(tmp_path / "e")],
    }[command]
    result = runner.invoke(app, [*args, "--storage-options", bad])
    assert result.exit_code == 2
    assert "--storage-options" in result.output and ("JSON" in result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "examples/train_metadata.csv", "--target", "3", "-o", "s3://bucket/plan.parquet"],
        ["export", "out", "s3://bucket/synthetic"],
        ["report", "out", "--dest", "gs://bucket/report"],
    ],
)
def test_object_storage_uri_where_a_local_path_is_needed_is_refused(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "local path" in result.output


def test_help_keeps_its_bracketed_defaults():
    assert "[default: one per CPU core]" in runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: OUT/report" in runner.invoke(app, ["report", "--help"], env={"COLUMNS": "200"}).output
    submit_help = runner.invoke(app, ["submit", "--help"], env={"COLUMNS": "200"}).output
    assert "[default: one per GPU" in submit_help and "[default: auto" in submit_help


def test_reading_an_output_never_aborts_the_interpreter_at_exit(made_out):
    """pq.read_table on a Python file object let an Arrow thread release it during interpreter
    shutdown: 'terminate called without an active exception', exit 134, in about 1 run in 10.
    Many short reader processes, each of which must exit 0."""
    import subprocess
    import sys

    code = f"from birdgen_ray import open_index; open_index({made_out!r})"  # the read, then exit at once
    codes = []
    for _ in range(8):  # 8 rounds of 4 concurrent processes
        procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)]
        codes += [(p.wait(60), p.stderr.read().decode()[-200:]) for p in procs]
    assert [c for c in codes if c[0] != 0] == []


@pytest.mark.parametrize("command", ["status", "check", "submit --dry-run"])
def test_object_storage_without_credentials_is_one_line_saying_so(command, tmp_path):
    no_credentials = {
        name: None for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    }
    no_credentials |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent"}
    no_credentials |= {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONTAINER_CREDENTIALS_FULL_URI": None}
    words = command.split()
    options = json.dumps({"endpoint_url": f"http://127.0.0.1:9/{words[0]}"})  # never reached: no credentials first
    if words[0] == "submit":  # the plan first, then the output as --out
        words = [words[0], write_plan(tmp_path / "plan.parquet", plan_table(2)), *words[1:], "--out"]
    result = runner.invoke(app, [*words, "s3://no-keys/out", "--storage-options", options], env=no_credentials)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: no credentials for s3://no-keys/out") and result.output.count("\n") == 1


@pytest.mark.parametrize("command", ["export", "report"])
def test_reading_a_folder_that_is_not_an_output_says_which_it_is(tmp_path, command):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my own files")
    for folder, expected in [("mine", "is not a birdgen-ray output"), ("gone", "does not exist")]:
        args = [str(tmp_path / folder), *(["--dest"] if command == "report" else []), str(tmp_path / "dest")]
        result = runner.invoke(app, [command, *args])
        assert result.exit_code == 2 and f"no index in {tmp_path / folder}: it {expected}" in result.output, (
            result.output
        )
