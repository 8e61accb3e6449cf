"""Building and writing plans: exact deficits and caps on a 30k-row file, byte-identical output,
ids stable across re-plans, selection, zero-row classes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from birdgen_ray.plan.budget import BudgetConfig
from birdgen_ray.plan.build import PlanOptions, build_plan, write_plan
from birdgen_ray.plan.metadata import read_classes
from birdgen_ray.plan.prompts import load_templates
from birdgen_ray.plan.tables import InputError
from birdgen_ray.plan.validate import read_plan
from tests.example_data import example_classes, write_counts, write_recordings, write_taxonomy
from tests.plans import read_plan_metadata

IDENTITY = ["clip_id", "label", "prompt", "negative_prompt", "seed", "duration_s", "take", "call_type"]


def plan(classes, **kw):
    budget = BudgetConfig(**{k: kw.pop(k) for k in ("target", "max_ratio", "total_budget") if k in kw})
    return build_plan(classes, PlanOptions(budget, **kw), load_templates())


@pytest.fixture(scope="module")
def big_metadata(tmp_path_factory):
    """A generated BirdCLEF-2023-layout train_metadata.csv of about 30k rows, counts 1..500."""
    classes = example_classes(180, seed=11, low=1, high=500)
    while sum(c.count for c in classes) < 30_000:  # top up the tail so the file has >= 30k rows
        classes = example_classes(len(classes) + 20, seed=11, low=1, high=500)
    path = write_recordings(tmp_path_factory.mktemp("big") / "train_metadata.csv", classes, "2023", seed=5)
    return path, {c.label: c.count for c in classes}


@pytest.mark.slow  # a 30k-row metadata file
def test_30k_row_file_deficits_are_exact_and_caps_hold(big_metadata, tmp_path):
    path, truth = big_metadata
    assert sum(truth.values()) >= 30_000 and min(truth.values()) == 1 and max(truth.values()) == 500
    classes = read_classes(path)
    assert {c.label: c.real_count for c in classes} == truth

    result = plan(classes, target=200, max_ratio=3.0)
    written = tmp_path / "plan.parquet"
    write_plan(result, written)
    table = read_plan(str(written))  # the contract's own validation passes

    per_class = Counter(table["label"].to_pylist())
    for label, real in truth.items():
        expected = min(max(0, 200 - real), math.floor(3.0 * real))
        assert per_class.get(label, 0) == expected == result.allocations[label].synthetic_count
    rows = table.select(["label", "take", "real_count", "synthetic_count", "rule"]).to_pylist()
    for row in rows:
        assert row["real_count"] == truth[row["label"]]
        assert row["synthetic_count"] == per_class[row["label"]]
        assert 0 <= row["take"] < row["synthetic_count"]
        assert row["rule"] in ("target", "max_ratio")
    assert {c.label for c in classes if result.allocations[c.label].rule == "none"} == {
        label for label, real in truth.items() if real >= 200
    }


def test_30k_row_file_with_total_budget_spends_it_exactly(big_metadata):
    path, truth = big_metadata
    result = plan(read_classes(path), target=300, max_ratio=5.0, total_budget=4321)
    assert result.table.num_rows == 4321
    need = {k: min(max(0, 300 - r), 5 * r) for k, r in truth.items()}
    assert all(a.synthetic_count <= need[a.label] for a in result.allocations.values())


def test_same_inputs_and_seed_give_byte_identical_plans(tmp_path):
    classes = example_classes(40, seed=2, high=120, taxa=("Aves", "Amphibia"))
    train = write_recordings(tmp_path / "train.csv", classes, "2025")
    taxonomy = write_taxonomy(tmp_path / "taxonomy.csv", classes)
    write_plan(plan(read_classes(train, taxonomy), target=60, seed=9), tmp_path / "a.parquet")
    write_plan(plan(read_classes(train, taxonomy), target=60, seed=9), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()

    write_plan(plan(read_classes(train, taxonomy), target=60, seed=10), tmp_path / "c.parquet")
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "c.parquet").read_bytes()


@pytest.mark.slow  # CLI subprocesses
def test_plan_bytes_do_not_depend_on_the_process_hash_seed(tmp_path):
    counts = write_counts(tmp_path / "counts.csv", example_classes(30, seed=4, high=80, taxa=("Aves", "Insecta")))
    script = (
        "import sys; from birdgen_ray.plan.budget import BudgetConfig; "
        "from birdgen_ray.plan.build import PlanOptions, build_plan, write_plan; "
        "from birdgen_ray.plan.metadata import read_classes; from birdgen_ray.plan.prompts import load_templates; "
        "r = build_plan(read_classes(sys.argv[1]), PlanOptions(BudgetConfig(target=50), seed=3), load_templates()); "
        "write_plan(r, sys.argv[2])"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"plan{hash_seed}.parquet"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(counts), str(out)], check=True, env=env)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_raising_the_target_keeps_every_earlier_row_and_only_adds(tmp_path):
    classes = read_classes(write_counts(tmp_path / "c.csv", example_classes(25, seed=8, high=90)))
    small = plan(classes, target=40, max_ratio=4.0).table.select(IDENTITY).to_pylist()
    large = plan(classes, target=70, max_ratio=4.0).table.select(IDENTITY).to_pylist()
    large_by_id = {row["clip_id"]: row for row in large}
    assert len(large) > len(small)
    assert all(large_by_id[row["clip_id"]] == row for row in small)
    # the new rows are exactly the later takes of each class
    old_takes = Counter(row["label"] for row in small)
    added = [row for row in large if row["clip_id"] not in {r["clip_id"] for r in small}]
    assert all(row["take"] >= old_takes[row["label"]] for row in added)


def test_include_and_exclude_by_label_and_taxon_class(tmp_path):
    ex = example_classes(12, seed=1, high=40, taxa=("Aves", "Amphibia", "Insecta"))
    classes = read_classes(write_counts(tmp_path / "c.csv", ex))
    insects = {c.label for c in ex if c.taxon_class == "Insecta"}
    frogs = sorted(c.label for c in ex if c.taxon_class == "Amphibia")

    result = plan(classes, target=50, exclude_classes=("insecta",), exclude=(frogs[0],))
    planned = set(result.table["label"].to_pylist())
    assert not planned & (insects | {frogs[0]})
    assert all(result.allocations[x].rule == "excluded" for x in insects | {frogs[0]})

    only = plan(classes, target=50, include=(frogs[1],), include_classes=("Amphibia", "Aves"))
    assert set(only.table["label"].to_pylist()) == {frogs[1]}

    with pytest.raises(ValueError, match="label 'nope'.*taxon class 'Fungi'") as err:
        plan(classes, target=50, include=("nope",), exclude_classes=("Fungi",))
    assert f"labels in the input: {', '.join(sorted(c.label for c in classes)[:3])}" in str(err.value)
    assert "taxon classes in the input: Amphibia, Aves, Insecta" in str(err.value)
    with pytest.raises(ValueError) as err:
        plan(classes, target=50, exclude=("nope",))
    assert "labels in the input" in str(err.value) and "taxon classes" not in str(err.value)


def test_taxonomy_class_without_recordings_is_an_error_unless_excluded(tmp_path):
    ex = example_classes(6, seed=3, high=20, taxa=("Aves", "Amphibia"))
    train = write_recordings(tmp_path / "train.csv", ex[1:], "2025")  # ex[0] only in the taxonomy
    classes = read_classes(train, write_taxonomy(tmp_path / "taxonomy.csv", ex))
    with pytest.raises(InputError) as err:
        plan(classes, target=30)
    assert "taxonomy.csv column 'primary_label' line 2" in str(err.value) and "zero rows" in str(err.value)
    assert ex[0].label not in set(plan(classes, target=30, exclude=(ex[0].label,)).table["label"].to_pylist())


def test_zero_count_in_a_counts_file_is_an_error(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("label,count\na,5\nb,0\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"counts.csv column 'count' line 3: class 'b' has zero rows"):
        plan(read_classes(path), target=10)


def test_written_plan_records_every_class_in_its_metadata(tmp_path):
    ex = example_classes(8, seed=6, high=30)
    classes = read_classes(write_counts(tmp_path / "c.csv", ex))
    result = plan(classes, target=20, exclude=(ex[3].label,), duration_s=3.5)
    write_plan(result, tmp_path / "p.parquet")
    meta = read_plan_metadata(tmp_path / "p.parquet")
    recorded = {c["label"]: (c["real_count"], c["synthetic_count"], c["rule"]) for c in meta["classes"]}
    assert recorded == {a.label: (a.real_count, a.synthetic_count, a.rule) for a in result.allocations.values()}
    assert meta["options"]["budget"]["target"] == 20 and meta["options"]["duration_s"] == 3.5
    assert set(pq.read_table(tmp_path / "p.parquet")["duration_s"].to_pylist()) == {3.5}


def test_nothing_to_generate_is_refused_at_write(tmp_path):
    classes = read_classes(write_counts(tmp_path / "c.csv", example_classes(3, low=10, high=20)))
    result = plan(classes, target=5)
    assert result.table.num_rows == 0
    with pytest.raises(ValueError, match="nothing to generate"):
        write_plan(result, tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("kw", [dict(duration_s=0.0), dict(duration_s=61.0), dict(seed=-1)])
def test_bad_options_are_refused(kw):
    with pytest.raises(ValueError):
        PlanOptions(BudgetConfig(target=1), **kw)
