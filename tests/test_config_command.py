"""Options declared once: a command built from a config's `option(...)` fields (cli/config_command.py)
gives back exactly the config the fields declare, and refuses a bad value in one line."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from birdgen_ray.cli.config_command import config_command
from birdgen_ray.config import RunConfig
from birdgen_ray.export.birdclef import ExportConfig
from birdgen_ray.fields import declared_options, option
from birdgen_ray.plan.request import PlanRequest
from birdgen_ray.verify.thresholds import SpeciesThreshold

runner = CliRunner()


def capture(config: type) -> tuple[typer.Typer, list]:
    seen = []

    def body(built) -> None:
        """Capture the built config."""
        seen.append(built)

    app = typer.Typer()
    app.command()(config_command(config, body))
    return app, seen


def test_no_options_give_the_configs_own_defaults():
    app, seen = capture(RunConfig)
    result = runner.invoke(app, ["plan.parquet", "--out", "out/"])
    assert result.exit_code == 0, result.output
    assert seen == [RunConfig(plan_path="plan.parquet", out="out/")]


def test_typed_values_reach_the_nested_configs():
    app, seen = capture(RunConfig)
    args = ["p", "-o", "o", "--steps", "10", "--scheduler", "ddim", "--min-species-confidence", "0.5x"]
    args += ["--verify", "birdnet", "--no-compile", "--batch-size", "4", "--actor-env", "A=1", "--actor-env", "B=x=y"]
    args += ["--storage-options", '{"endpoint_url": "http://127.0.0.1:9"}', "--no-progress", "--shard-timeout", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = seen[0]
    assert run.generation.num_inference_steps == 10 and run.generation.scheduler == "ddim"
    assert run.generation.verifier == "birdnet"
    assert (run.generation.quality.min_species_confidence, run.generation.quality.species_confidence_relative) == (
        0.5,
        True,
    )
    assert run.engine.compile_unet is False and run.engine.batch_size == 4
    assert run.actor_env == {"A": "1", "B": "x=y"}
    assert run.storage_options == {"endpoint_url": "http://127.0.0.1:9"}
    assert run.progress is False and run.shard_timeout_s == 5.0


@pytest.mark.parametrize(
    "args, named",
    [
        (["--actor-env", "NOEQUALS"], "--actor-env expects NAME=VALUE"),
        (["--min-species-confidence", "2"], "--min-species-confidence must be a confidence"),
        (["--storage-options", "[1]"], "--storage-options must be a JSON object"),
        (["--rank-by", "species"], "--rank-by species needs --verify birdnet"),  # the config's own cross-field check
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(args, named):
    app, seen = capture(RunConfig)
    result = runner.invoke(app, ["p", "-o", "o", *args])
    assert result.exit_code == 2 and seen == []
    assert result.output.count("\n") == 1 and named in result.output, result.output


def test_every_declared_option_is_on_the_command_line_with_its_help():
    click_command = typer.main.get_command(capture(RunConfig)[0])
    by_name = {param.name: param for param in click_command.params}
    for declared in declared_options(RunConfig):
        param = by_name[declared.name]
        assert declared.option.help.split(".")[0] in (param.help or ""), declared.name
        if not declared.option.argument:
            assert declared.flag in param.opts, (declared.flag, param.opts)


@dataclass(frozen=True)
class Inner:
    size: int = option(1, "Inner size.")


@dataclass(frozen=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    size: int = option(2, "Outer size.")


def test_two_configs_declaring_one_name_are_refused():
    with pytest.raises(TypeError, match="size"):
        capture(Outer)


def test_an_optional_nested_config_is_built_only_when_its_required_option_is_given():
    app, seen = capture(PlanRequest)
    base = ["in.csv", "-o", "p.parquet", "--target", "3", "--include", "a,b", "--include", "c"]
    assert runner.invoke(app, base).exit_code == 0
    assert seen[-1].references is None
    assert seen[-1].options.budget.target == 3 and seen[-1].options.include == ("a", "b", "c")
    assert runner.invoke(app, [*base, "--references", "audio/", "--strength", "0.3:0.7"]).exit_code == 0
    assert seen[-1].references.root == "audio/" and seen[-1].references.strength == (0.3, 0.7)
    refused = runner.invoke(app, ["in.csv", "-o", "s3://bucket/plan.parquet", "--target", "3"])
    assert (
        refused.exit_code == 2 and "--out: s3://bucket/plan.parquet looks like an object-storage URI" in refused.output
    )


def test_an_option_whose_value_is_a_dataclass_is_an_option_not_a_nested_config():
    app, seen = capture(ExportConfig)
    assert runner.invoke(app, ["--min-species-confidence", "0.5x", "--snr-db", "6"]).exit_code == 0
    assert seen[-1].species_threshold == SpeciesThreshold(0.5, relative=True) and seen[-1].snr_db == (6.0, 6.0)
    assert runner.invoke(app, []).exit_code == 0 and seen[-1] == ExportConfig()


@pytest.mark.parametrize(
    "alone", [["--strength", "0.3:0.7"], ["--storage-options", "{}"], ["--storage-options", "nope"]]
)
def test_an_option_of_an_optional_config_that_was_not_asked_for_is_refused(alone):
    app, seen = capture(PlanRequest)
    result = runner.invoke(app, ["in.csv", "-o", "p.parquet", "--target", "3", *alone])
    assert result.exit_code == 2 and seen == []
    assert f"error: {alone[0]} needs --references" in result.output, result.output


def test_a_switch_on_by_default_must_declare_how_to_turn_it_off():
    with pytest.raises(TypeError, match="loud"):
        capture(Loud)


@dataclass(frozen=True)
class Loud:
    loud: bool = option(True, "Speak up.")
