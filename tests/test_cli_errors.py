"""What a user sees when a command cannot do its job: one `error:` line naming the flag or path, never a
traceback; values that make no sense refused at parsing; Ctrl-C during submit says what is kept."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from birdgen_ray import open_index
from birdgen_ray.cli import app
from birdgen_ray.config import SCHEDULERS, RunConfig
from birdgen_ray.export.birdclef import AUDIO_FORMATS, EXPORT_LAYOUTS
from birdgen_ray.index.reader import as_output
from birdgen_ray.index.status import output_status
from birdgen_ray.io.layout import LEASE_FILE
from tests import fault_hooks
from tests.fault_hooks import SLEEP_ENV
from tests.interruptible import interrupt_when
from tests.made_outputs import null_output
from tests.plans import plan_table, write_plan

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = str(REPO / "examples" / "train_metadata.csv")
CLI = [sys.executable, "-c", "from birdgen_ray.cli import app; app()"]  # `birdgen-ray`, wherever it is installed
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


@pytest.fixture(scope="module")
def made_out(ray_local, tmp_path_factory):
    return str(null_output(tmp_path_factory.mktemp("cli-errors"), plan_table(4)))


def _help_line(command: str, flag: str) -> str:
    """The option's entry in --help, its wrapped lines joined: from its name to the next option's."""
    lines = invoke(command, "--help").output.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"\s{2}(-\w, )?--\w", line)]
    for n, i in enumerate(starts):
        if re.match(rf"\s{{2}}(-\w, )?{re.escape(flag)}[\s/]", lines[i] + " "):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            return " ".join(line.strip() for line in lines[i:end] if line.strip())
    raise AssertionError(f"{flag} not in {command} --help")


# -- 1. destinations that cannot be written -------------------------------------------------------------


def _unwritable(kind: str, tmp_path: Path) -> Path:
    """A destination no one can write: below a regular file, a regular file itself, in /proc or in /sys."""
    (tmp_path / "afile").write_text("not a folder")
    if kind in ("proc", "sys") and not Path(f"/{kind}/self" if kind == "proc" else "/sys/kernel").is_dir():
        pytest.skip(f"no /{kind} here")  # without it, root could create the folder
    return {
        "under_a_file": tmp_path / "afile" / "x",
        "a_file": tmp_path / "afile",
        "proc": Path("/proc/birdgen-no-such/x"),
        "sys": Path("/sys/birdgen-x"),
    }[kind]


def _command(name: str, dest: Path, out: str, tmp_path: Path) -> list:
    plan = tmp_path / "plan.parquet"
    return {
        "plan -o": lambda: ["plan", EXAMPLE, "--target", 6, "--duration", 1, "-o", dest / "p.parquet"],
        "plan --report-dir": lambda: [
            "plan",
            EXAMPLE,
            "--target",
            6,
            "--duration",
            1,
            "-o",
            plan,
            "--report-dir",
            dest,
        ],
        "submit --out": lambda: [
            "submit",
            write_plan(plan, plan_table(2)),
            "--out",
            dest,
            "--generator",
            "null",
            "--no-progress",
        ],
        "export DEST": lambda: ["export", out, dest],
        "report --dest": lambda: ["report", out, "--dest", dest],
        "extract --dest": lambda: ["extract", out, open_index(out)["clip_id"][0].as_py(), "--dest", dest],
    }[name]()


@pytest.mark.parametrize("kind", ["under_a_file", "a_file", "proc", "sys"])
@pytest.mark.parametrize(
    "name", ["plan -o", "plan --report-dir", "submit --out", "export DEST", "report --dest", "extract --dest"]
)
def test_an_unwritable_destination_is_one_error_line_naming_it(made_out, tmp_path, name, kind):
    dest = _unwritable(kind, tmp_path)
    result = invoke(*_command(name, dest, made_out, tmp_path))

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    shown = (
        dest / "p.parquet" if name == "plan -o" else dest / "plan.balance_*" if name == "plan --report-dir" else dest
    )
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: cannot write {shown}: "), result.output
    assert "Traceback" not in result.output and "Errno" not in result.output
    if kind in ("under_a_file", "a_file"):
        assert errors[0].endswith(f"{tmp_path / 'afile'} is a file, not a folder")
    if name == "plan --report-dir":
        assert not (tmp_path / "plan.parquet").exists()  # a bad --report-dir leaves no plan behind


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_missing_output_is_still_named_as_missing_not_as_unwritable(tmp_path, command):
    missing = tmp_path / "nothing-here"
    args = ["export", missing, tmp_path / "e"] if command == "export" else ["report", missing]
    result = invoke(*args)
    assert result.exit_code == 2
    assert "error: no index in" in result.output and "cannot write" not in result.output


# -- 2./3. values refused at parsing, naming the flag ----------------------------------------------------


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--steps", "0"], "--steps"),
        (["--candidates", "0"], "--candidates"),
        (["--sample-rate", "100"], "--sample-rate"),
        (["--gpus-per-actor", "-1"], "--gpus-per-actor"),
        (["--gpus-per-actor", "nan"], "--gpus-per-actor"),
        (["--num-actors", "0"], "--num-actors"),
        (["--max-shard-attempts", "0"], "--max-shard-attempts"),
        (["--guidance", "-1"], "--guidance"),
        (["--guidance", "inf"], "--guidance"),
        (["--shard-size", "-5"], "--shard-size"),
        (["--batch-size", "0"], "--batch-size"),
        (["--max-retries", "-1"], "--max-retries"),
        (["--min-clap", "2"], "--min-clap"),
        (["--peak-dbfs", "1"], "--peak-dbfs"),
        (["--shard-timeout", "0"], "--shard-timeout"),
    ],
)
def test_submit_refuses_nonsense_values_naming_the_flag(tmp_path, args, flag):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(2))
    result = invoke("submit", plan, "--out", tmp_path / "out", "--generator", "null", "--no-progress", *args)
    assert result.exit_code == 2, result.output
    assert flag in result.output
    for internal in (
        "num_inference_steps",
        "candidates_per_clip",
        "output_sample_rate",
        "gpus_per_actor",
        "QualityThresholds",
        "Traceback",
    ):
        assert internal not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, flag", [(["--sample-rate", "0"], "--sample-rate"), (["--workers", "-1"], "--workers")])
def test_export_refuses_nonsense_values_naming_the_flag(made_out, tmp_path, args, flag):
    result = invoke("export", made_out, tmp_path / "e", *args)
    assert result.exit_code == 2 and flag in result.output
    assert not (tmp_path / "e").exists()


def test_run_config_refuses_what_would_run_something_else():
    for bad in (dict(num_actors=0), dict(shard_size=0), dict(max_shard_attempts=0), dict(shard_timeout_s=0.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RunConfig(plan_path="p", out="o", **bad)


# -- 4. fixed sets of values are choices -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command, flag, values",
    [
        ("submit", "--scheduler", SCHEDULERS),
        ("submit", "--generator", ("audioldm2", "null")),
        ("export", "--format", ("birdclef",)),
        ("export", "--layout", EXPORT_LAYOUTS),
        ("export", "--audio-format", tuple(AUDIO_FORMATS)),
    ],
)
def test_choice_options_list_their_values_and_refuse_others_at_parsing(tmp_path, command, flag, values):
    help_line = _help_line(command, flag)
    assert "|".join(values) in help_line or (len(values) == 1 and values[0] in help_line)
    args = (
        ["submit", "plan.parquet", "--out", tmp_path / "o"] if command == "submit" else ["export", "o", tmp_path / "e"]
    )
    result = invoke(*args, flag, "nope")
    assert result.exit_code == 2 and flag in result.output and "nope" in result.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "e").exists()


def test_export_still_takes_each_layout_and_audio_format(made_out, tmp_path):
    result = invoke("export", made_out, tmp_path / "e", "--layout", "2023", "--audio-format", "flac")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "e" / "train_metadata.csv").is_file()
    assert len(list((tmp_path / "e" / "train_audio").glob("*/*.flac"))) == 4


# -- 5. help text ----------------------------------------------------------------------------------------


def test_help_shows_one_default_per_option_and_says_off_for_unset_gates():
    workers = _help_line("export", "--workers")
    assert workers.count("[default:") == 1 and "[default: one per CPU core]" in workers
    assert "[default: off]" in _help_line("submit", "--min-clap")
    assert "[default: off]" in _help_line("submit", "--shard-timeout")
    for flag in ("--include-class", "--exclude-class"):
        assert "comma-separate" in _help_line("plan", flag)


# -- 6. plan: nothing to generate, a directory as input --------------------------------------------------


def test_nothing_to_generate_writes_neither_plan_nor_report_and_says_the_old_plan_is_kept(tmp_path):
    out = tmp_path / "plan.parquet"
    assert invoke("plan", EXAMPLE, "--target", 6, "--duration", 1, "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert "plan.balance_classes.csv" in before

    result = invoke("plan", EXAMPLE, "--target", 1, "-o", out)
    assert result.exit_code == 1
    assert "nothing to generate" in result.output and f"existing {out} was left untouched" in result.output
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    fresh = tmp_path / "fresh"
    result = invoke("plan", EXAMPLE, "--target", 1, "-o", fresh / "plan.parquet")
    assert result.exit_code == 1 and "left untouched" not in result.output
    assert not fresh.exists()


def test_plan_of_a_directory_says_it_is_a_directory(tmp_path):
    result = invoke("plan", tmp_path, "--target", 6, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2
    assert "is a directory" in result.output and "file not found" not in result.output


# -- 7. Ctrl-C during submit -----------------------------------------------------------------------------


def test_ctrl_c_during_submit_says_what_is_kept_and_releases_the_lock(ray_local, tmp_path):
    plan = write_plan(tmp_path / "plan.parquet", plan_table(24))
    out = tmp_path / "out"
    command = [
        *CLI,
        "submit",
        plan,
        "--out",
        str(out),
        "--generator",
        "null",
        "--shard-size",
        "2",
        "--num-actors",
        "1",
        "--no-progress",
        "--address",
        ray_local.get_runtime_context().gcs_address,
        "--actor-env",
        f"{SLEEP_ENV}=0.2",
    ]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": fault_hooks.PYTHONPATH}  # token auth, hooks
    returncode, stdout, stderr = interrupt_when(
        command,
        env,
        lambda driver: bool(list((out / "shards").glob("*.parquet"))),
        "a committed shard",
        reach_s=45,
        end_s=45,
    )
    assert returncode == 130, stderr
    status = output_status(as_output(str(out)))
    assert 2 <= status["done"] < 24, "the run ended before it could be interrupted"
    last = stderr.strip().splitlines()[-1]  # after Ray's own "Connecting to existing Ray cluster" lines
    assert last == f"interrupted: {status['done']}/24 clips are committed and kept; run the same command to resume."
    assert "Traceback" not in stderr
    assert not (out / LEASE_FILE).exists()
