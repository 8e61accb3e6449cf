"""Plan and config validation that needs no Ray: clip ids that fit a tar member, bad settings named."""

from __future__ import annotations

import pyarrow as pa
import pytest

from birdgen_ray.config import EngineConfig, QualityThresholds
from birdgen_ray.plan.schema import PlanError, make_clip_id
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.write.shard_writer import pack_shard
from tests.plans import plan_table


def with_ids(ids):
    return validate_plan(plan_table(len(ids)).append_column("clip_id", pa.array(ids)))


def test_longest_allowed_clip_id_packs_into_a_tar_and_longer_or_dotted_ids_are_named():
    import numpy as np

    from birdgen_ray.generate.types import GeneratedClip

    longest = "a" * 95
    plan = with_ids([longest, "b"])
    clips = [GeneratedClip(cid, np.zeros(160, np.float32), 16_000, 16_000, 8_000.0, 0) for cid in [longest, "b"]]
    data, locations = pack_shard(plan, clips)
    assert locations[0][0] == f"{longest}.wav" and len(data) > 0

    with pytest.raises(PlanError, match=r"clip_id': null or not file-name safe .* rows 0, 2"):
        with_ids(["a" * 96, "ok", "has.dot"])


def test_derived_clip_ids_are_always_valid():
    label = "x" * 200  # a long, odd label still gives a short, safe id
    clip_id = make_clip_id(label + " ü/..", "prompt", "neg", 1, 5.0)
    assert len(clip_id) <= 95 and "." not in clip_id and "/" not in clip_id
    assert with_ids([clip_id])["clip_id"][0].as_py() == clip_id


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: QualityThresholds(max_retries=-1), "max_retries must be >= 0"),
        (lambda: QualityThresholds(max_silence_fraction=1.5), "max_silence_fraction must be within"),
        (lambda: EngineConfig(batch_size=0), "batch_size must be >= 1"),
    ],
)
def test_bad_settings_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_labels_that_cannot_be_folder_names_or_list_values_are_named_by_row():
    labels = ["ok", "a/b", "c,d", "..", "e\\f", "fine-label_2.x"]
    with pytest.raises(PlanError) as err:
        validate_plan(plan_table(len(labels)).set_column(0, "label", pa.array(labels)))
    assert "column 'label': label is not 1-64 letters, digits" in str(err.value)
    assert "rows 1, 2, 3, 4" in str(err.value) and "row 5" not in str(err.value)
    assert validate_plan(plan_table(2).set_column(0, "label", pa.array(["ok", "fine-label_2.x"]))).num_rows == 2


def test_given_clip_ids_are_checked_with_every_other_rule_in_one_report():
    table = plan_table(4).append_column("clip_id", pa.array(["a", "a", "b.c", "d"]))
    table = table.set_column(0, "label", pa.array(["ok", "x/y", "ok", "ok"]))
    table = table.set_column(
        table.schema.get_field_index("duration_s"), "duration_s", pa.array([1.0, float("nan"), 1.0, 99.0])
    )
    with pytest.raises(PlanError) as err:
        validate_plan(table)
    message = str(err.value)
    assert "column 'label': label is not 1-64 letters" in message and "row 1" in message
    assert "column 'duration_s'" in message and "rows 1, 3" in message
    assert "column 'clip_id': null or not file-name safe" in message and "row 2" in message
    assert "column 'clip_id': duplicate id 'a' in rows 0, 1" in message


def test_the_same_row_twice_is_a_duplicate_derived_id():
    table = plan_table(3)
    twice = pa.concat_tables([table, table.slice(1, 1)])
    with pytest.raises(PlanError, match=r"duplicate id '[^']+' in rows 1, 3"):
        validate_plan(twice)


def test_a_float_seed_column_with_nan_hides_no_other_problem():
    table = plan_table(4)
    seeds = pa.array([1.0, float("nan"), 3.0, None], pa.float64())
    table = table.set_column(table.column_names.index("seed"), "seed", seeds)
    prompts = table["prompt"].to_pylist()
    prompts[2] = " "
    table = table.set_column(table.column_names.index("prompt"), "prompt", pa.array(prompts))
    durations = table["duration_s"].to_pylist()
    durations[0] = -1.0
    table = table.set_column(table.column_names.index("duration_s"), "duration_s", pa.array(durations))
    with pytest.raises(PlanError) as err:
        validate_plan(table)
    problems = err.value.problems
    assert any("'seed'" in p and "rows 1, 3" in p and "NaN" in p for p in problems), problems
    assert any("'prompt'" in p and "row 2" in p for p in problems), problems
    assert any("'duration_s'" in p and "row 0" in p for p in problems), problems
    assert not any("expected integer" in p for p in problems), problems


def test_whole_number_float_seeds_are_cast_and_said_so(caplog):
    table = plan_table(3)
    ints = table["seed"].to_pylist()
    table = table.set_column(table.column_names.index("seed"), "seed", pa.array([float(v) for v in ints]))
    with caplog.at_level("WARNING", logger="birdgen_ray.plan.validate"):
        plan = validate_plan(table, source="p.parquet")
    assert plan.schema.field("seed").type == pa.int64() and plan["seed"].to_pylist() == ints
    assert "cast to int64" in caplog.text and "p.parquet" in caplog.text
