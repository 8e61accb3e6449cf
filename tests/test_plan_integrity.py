"""Plans as `plan` writes them carry a content checksum: no flipped bit anywhere in the file
(pages, page headers, footer, column names, metadata) changes a plan silently. Labels follow one
rule; invalid UTF-8 is named by row and column.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from birdgen_ray.cli import app
from birdgen_ray.io.storage import read_parquet
from birdgen_ray.plan.schema import PlanError
from birdgen_ray.plan.validate import read_plan
from tests.example_data import example_classes, write_recordings
from tests.plans import plan_table, write_plan

FLIPS = 1000  # random bits across the file, plus every bit of the first byte of every column name's copies


def made_by_plan(tmp_path) -> bytes:
    metadata = write_recordings(tmp_path / "train_metadata.csv", example_classes(4, high=3), "2024")
    path = tmp_path / "plan.parquet"
    result = CliRunner().invoke(app, ["plan", str(metadata), "--target", "5", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path.read_bytes()


def name_offsets(data: bytes, names: list[str]) -> list[int]:
    """Where each column name's bytes start in the footer (the thrift schema and ARROW:schema)."""
    found = []
    for name in names:
        start = 0
        while (at := data.find(name.encode(), start)) != -1:
            found.append(at)
            start = at + 1
    return found


@pytest.mark.slow  # ~1,500 reads: 10-30 s on a loaded 2-core machine
def test_no_bit_flip_in_a_plan_written_by_plan_is_accepted_silently(tmp_path):
    data = made_by_plan(tmp_path)
    expected_raw = read_parquet(data)
    expected = read_plan(str(tmp_path / "plan.parquet"))
    rng = random.Random(26)
    positions = [(rng.randrange(len(data)), rng.randrange(8)) for _ in range(FLIPS)]
    positions += [(at, bit) for at in name_offsets(data, expected_raw.column_names) for bit in range(8)]
    path = tmp_path / "flipped.parquet"
    silent, refused, unchanged = [], 0, 0
    for offset, bit in positions:
        bad = bytearray(data)
        bad[offset] ^= 1 << bit
        path.write_bytes(bytes(bad))
        try:
            got = read_plan(str(path))
        except PlanError as exc:
            assert "flipped.parquet" in str(exc)
            refused += 1
            continue
        raw = read_parquet(bytes(bad))
        if got.equals(expected) and raw.equals(expected_raw, check_metadata=True):
            unchanged += 1  # a bit no reader looks at (statistics, the writer's name): the same plan
        else:
            silent.append((offset, bit))
    assert len(positions) >= 1000
    assert not silent, f"{len(silent)} flips changed the plan silently: {silent[:10]}"
    # the rest flipped bits no reader uses (statistics, the writer's name, a chunk's own copy of its path)
    assert refused + unchanged == len(positions) and refused > len(positions) / 2, (refused, unchanged)


def test_a_renamed_or_dropped_column_of_a_plan_written_by_plan_is_corruption(tmp_path):
    made_by_plan(tmp_path)
    table = pq.read_table(tmp_path / "plan.parquet")
    renamed = table.rename_columns(["negative_prompt_" if n == "negative_prompt" else n for n in table.column_names])
    renamed = renamed.replace_schema_metadata(table.schema.metadata)  # as a flipped name in the footer would
    dropped = table.drop_columns(["negative_prompt"])
    for name, bad in (("renamed", renamed), ("dropped", dropped)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(bad, path)  # the footer metadata (and its checksum) travel along
        with pytest.raises(PlanError, match=rf"(?s){name}.parquet.*checksum does not match"):
            read_plan(str(path))


def test_invalid_utf8_is_named_by_row_and_column(tmp_path):
    prompts = pa.array([b"a bird", b"bad \xff\xfe bytes", b"ok", b"\xc3"], pa.binary()).cast(pa.string(), safe=False)
    table = plan_table(4).set_column(1, "prompt", prompts)
    with pytest.raises(PlanError, match=r"column 'prompt': invalid UTF-8 in rows 1, 3"):
        read_plan(write_plan(tmp_path / "plan.parquet", table))


@pytest.mark.parametrize(
    "label",
    ["next\u0085line", "line\u2028sep", "bidi\u202eoverride", "zero\u200bwidth", "a" * 65, "two words", "..", "a/b"],
)
def test_one_label_rule_names_the_row(tmp_path, label):
    table = plan_table(3).set_column(0, "label", [["ok", "fine.name-1_x", label]])
    with pytest.raises(PlanError, match=r"label is not 1-64 letters, digits.* row 2$"):
        read_plan(write_plan(tmp_path / "plan.parquet", table))


def test_labels_of_letters_digits_and_dot_dash_underscore_up_to_64_pass(tmp_path):
    table = plan_table(3).set_column(0, "label", [["a" * 64, "Ñandú.2-x_y", "asbfly"]])
    assert read_plan(write_plan(tmp_path / "plan.parquet", table)).num_rows == 3


def test_another_writers_plan_is_read_with_the_strict_schema(tmp_path):
    table = plan_table(3).append_column("negative_promt", pa.array(["x", "y", "z"]))  # a misspelt name
    path = write_plan(tmp_path / "plan.parquet", table)
    with pytest.raises(PlanError, match=r"column 'negative_promt': not a plan column.*--allow-extra-columns"):
        read_plan(path)
    assert "negative_promt" in read_plan(path, allow_extra_columns=True).column_names
    wrong_type = plan_table(3).set_column(4, "taxon_class", pa.array([1, 2, 3]))  # a column plan writes as string
    with pytest.raises(PlanError, match=r"column 'taxon_class': expected string, got int64"):
        read_plan(write_plan(tmp_path / "typed.parquet", wrong_type), allow_extra_columns=True)
    runner = CliRunner()
    refused = runner.invoke(app, ["submit", path, "--out", str(tmp_path / "out"), "--dry-run"])
    assert refused.exit_code == 2 and "negative_promt" in refused.output
    allowed = ["submit", path, "--out", str(tmp_path / "out"), "--dry-run", "--allow-extra-columns"]
    assert runner.invoke(app, allowed).exit_code == 0
