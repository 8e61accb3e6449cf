"""Hints that work: a command an error line suggests (in backticks) is run as written and succeeds.

In-process CliRunner; the output the hinted commands read is real (the null generator)."""

from __future__ import annotations

import re
import shlex

from typer.testing import CliRunner

from birdgen_ray.cli import app
from tests.example_data import example_classes, write_recordings

HINT = re.compile(r"`birdgen-ray ([^`]+)`")


def hinted(output: str) -> list[list[str]]:
    return [shlex.split(command) for command in HINT.findall(" ".join(output.split()))]


def test_the_plan_a_csv_hint_makes_a_plan_that_submit_then_takes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = write_recordings(tmp_path / "train_metadata.csv", example_classes(3, high=3), "2024")
    runner = CliRunner()
    refused = runner.invoke(app, ["submit", str(csv), "--out", "out", "--dry-run"])
    assert refused.exit_code == 2 and "looks like a CSV" in refused.output, refused.output
    commands = hinted(refused.output)
    assert len(commands) == 1 and commands[0][0] == "plan", commands
    made = runner.invoke(app, commands[0])
    assert made.exit_code == 0, made.output
    plan = commands[0][commands[0].index("-o") + 1]
    dry = runner.invoke(app, ["submit", plan, "--out", "out", "--generator", "null", "--dry-run"])
    assert dry.exit_code == 0 and "is valid" in dry.output, dry.output


def test_the_unverifiable_classes_hint_names_options_that_exist(tmp_path):
    from birdgen_ray.verify.species import SpeciesMap, describe_unverifiable

    line = describe_unverifiable(SpeciesMap(index={}, unverifiable=("zzz",)))
    assert "--species-map" in line and "submit --verify birdnet" in line
    for command in ("submit", "verify"):  # the commands it names take --species-map
        assert "--species-map" in CliRunner().invoke(app, [command, "--help"]).output
    assert "--species-map" not in CliRunner().invoke(app, ["plan", "--help"]).output  # and it names no plan option
