"""`birdgen-ray plan` end to end through the real CLI: each input layout, report files, errors."""

from __future__ import annotations

import csv

import matplotlib.image
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.plan.validate import read_plan
from tests.example_data import example_classes, write_counts, write_recordings, write_taxonomy

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["plan", *map(str, args)], env={"COLUMNS": "120"})


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def inputs(tmp_path):
    ex = example_classes(15, seed=7, high=60, taxa=("Aves", "Amphibia", "Insecta"))
    return {
        "2021": [write_recordings(tmp_path / "train_metadata.csv", [c for c in ex if c.taxon_class == "Aves"], "2021")],
        "2025": [
            write_recordings(tmp_path / "train.csv", ex, "2025"),
            "--taxonomy",
            write_taxonomy(tmp_path / "taxonomy.csv", ex),
        ],
        "counts": [write_counts(tmp_path / "counts.parquet", ex)],
        "classes": ex,
    }


@pytest.mark.parametrize("layout", ["2021", "2025", "counts"])
def test_plan_writes_a_valid_plan_a_report_and_a_short_summary(inputs, tmp_path, layout):
    out = tmp_path / "out" / "plan.parquet"
    result = run(*inputs[layout], "--target", 40, "--max-ratio", 2, "--seed", 5, "--duration", 4, "-o", out)
    assert result.exit_code == 0, result.output

    table = read_plan(str(out))
    assert set(table["duration_s"].to_pylist()) == {4.0}
    classes = read_csv(tmp_path / "out" / "plan.balance_classes.csv")
    planned = {}
    for label in table["label"].to_pylist():
        planned[label] = planned.get(label, 0) + 1
    for row in classes:
        real, synthetic = int(row["real_count"]), int(row["synthetic_count"])
        assert synthetic == planned.get(row["label"], 0) == min(max(0, 40 - real), 2 * real)
        assert int(row["total"]) == real + synthetic
    taxa = read_csv(tmp_path / "out" / "plan.balance_taxa.csv")
    assert sum(int(t["synthetic_count"]) for t in taxa) == table.num_rows
    assert sum(int(t["classes"]) for t in taxa) == len(classes)
    image = matplotlib.image.imread(tmp_path / "out" / "plan.balance.png")
    assert image.shape[0] > 100 and image.shape[1] > 100

    assert "taxon class" in result.output and f"({table.num_rows} clips)" in result.output
    assert len(result.output.splitlines()) < 20  # short


def test_report_dir_and_byte_identical_reruns(inputs, tmp_path):
    args = [*inputs["2025"], "--total-budget", 100, "--exclude-class", "Insecta,amphibia", "--seed", 1]
    assert run(*args, "-o", tmp_path / "a.parquet", "--report-dir", tmp_path / "rep").exit_code == 0
    assert run(*args, "-o", tmp_path / "b.parquet", "--report-dir", tmp_path / "rep").exit_code == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (tmp_path / "rep" / "a.balance.png").is_file() and (tmp_path / "rep" / "b.balance_taxa.csv").is_file()
    rows = read_csv(tmp_path / "rep" / "a.balance_classes.csv")
    assert {r["rule"] for r in rows if r["taxon_class"] in ("Insecta", "Amphibia")} == {"excluded"}
    assert {r["taxon_class"] for r in rows if int(r["synthetic_count"])} == {"Aves"}
    birds = [int(r["real_count"]) for r in rows if r["taxon_class"] == "Aves"]
    gaps = sum(max(birds) - real for real in birds)  # no --target: fill toward the largest kept class
    assert gaps > 100 and sum(int(r["synthetic_count"]) for r in rows) == 100


def test_custom_template_file(inputs, tmp_path):
    templates = tmp_path / "t.yaml"
    templates.write_text(
        "negative_prompt: hum\n"
        "default:\n  templates: ['{sound}, {common_name}']\n  call_types: [call]\n"
        "  habitats: [x]\n  styles: [y]\n  sounds: {default: [tweet]}\n",
        encoding="utf-8",
    )
    out = tmp_path / "p.parquet"
    assert run(*inputs["counts"], "--target", 10, "--templates", templates, "-o", out).exit_code == 0
    table = read_plan(str(out))
    assert all(p.startswith("Tweet, ") for p in table["prompt"].to_pylist())
    assert set(table["negative_prompt"].to_pylist()) == {"hum"}


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda d, i: [i["2025"][0], "--target", 5], "--taxonomy"),
        (lambda d, i: [i["counts"][0]], "--target N and/or --total-budget"),
        (lambda d, i: [i["counts"][0], "--target", 5, "--include", "nope"], "label 'nope'"),
        (lambda d, i: [i["counts"][0], "--target", 5, "--exclude-class", "Aves,Fungi"], "taxon class 'Fungi'"),
        (lambda d, i: [i["counts"][0], "--target", 5, "--duration", 90], "--duration"),
        (lambda d, i: [d / "missing.csv", "--target", 5], "missing.csv: file not found"),
        (lambda d, i: [i["counts"][0], "--target", 5, "--templates", d / "none.toml"], "none.toml"),
    ],
)
def test_bad_input_exits_nonzero_with_a_clear_message(inputs, tmp_path, make_args, expected):
    result = run(*make_args(tmp_path, inputs), "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "p.parquet").exists()


def test_non_utf8_input_names_file_column_and_line(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_bytes(b"primary_label,common_name\nwren,Wren\ntit,M\xe9sange\n")
    result = run(path, "--target", 5, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 2
    assert "meta.csv" in result.output and "column 'common_name' line 3" in result.output


def test_nothing_to_generate_exits_1_after_the_summary(inputs, tmp_path):
    result = run(*inputs["counts"], "--target", 0, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 1
    assert "nothing to generate" in result.output and "taxon class" in result.output
    assert not (tmp_path / "p.parquet").exists()


def test_help_explains_options_with_examples():
    result = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    for text in (
        "Examples",
        "--target",
        "--max-ratio",
        "--total-budget",
        "--include-class",
        "--templates",
        "--report-dir",
        "byte-identical",
        "birdgen-ray plan train.csv --taxonomy taxonomy.csv",
    ):
        assert text in result.output
