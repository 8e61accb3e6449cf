"""The help at 80 columns: whole option names, no cut sentences, flags without a value; --version."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from birdgen_ray.cli import app

runner = CliRunner()
COMMANDS = ["plan", "submit", "status", "check", "extract", "report", "export", "verify", "evaluate"]


def help_text(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80"}, prog_name="birdgen-ray")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_at_80_columns_shows_whole_option_names(command):
    text = help_text(command)
    click_command = typer.main.get_command(app).commands[command]
    names = {opt for p in click_command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), (name, text)
    for line in text.splitlines():
        assert len(line) <= 80, line
        assert "…" not in line and "<bool>" not in line, line
        # metavars in words (FILE..., SPECIES, N), never Python types; no escaped brackets
        assert "\\[" not in line and not re.search(r"<(str|int|float|path|list\[)", line), line
    # every --word in the text is a whole option name, not one cut at a hyphen ("--num-")
    assert {m for m in re.findall(r"--[a-z][a-z0-9-]*", text) if m.endswith("-")} == set()


def test_command_list_sentences_are_not_cut():
    text = help_text()
    assert "..." not in text.split("Commands:")[1]
    assert "--version" in text


@pytest.mark.parametrize(
    "command, flag", [("status", "--json"), ("submit", "--compile"), ("export", "--include-failed")]
)
def test_flags_take_no_value(command, flag):
    text = help_text(command)
    line = next(line for line in text.splitlines() if line.strip().startswith(flag))
    # no metavar after the name (an on/off pair such as --compile / --no-compile takes no value either)
    pair = rf"(\s/\s--no-{flag[2:]})?"
    assert re.match(rf"\s*{flag}{pair}\s{{2,}}\S", line) or line.strip() == flag, line


def test_status_json_is_a_flag(tmp_path):
    result = runner.invoke(app, ["status", str(tmp_path / "none"), "--json", "true"])
    assert result.exit_code == 2 and "unexpected extra argument" in result.output.lower()
    result = runner.invoke(app, ["status", str(tmp_path / "none"), "--json"])
    assert "no such option" not in result.output.lower() and "extra argument" not in result.output.lower()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.match(r"birdgen-ray \S+", result.output)


def test_metavars_are_words():
    assert re.search(r"--audio FILE\.\.\.\s", help_text("verify"))
    assert re.search(r"--species SPECIES\s", help_text("verify"))
    assert re.search(r"--steps N\s", help_text("submit")) and re.search(
        r"--storage-options JSON\s", help_text("submit")
    )
