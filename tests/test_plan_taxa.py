"""Prompts a researcher would sign off on: call types as sound words, settings from what the species
is (eBird order and family), the eBird taxonomy as --taxonomy, prompt styles, the GPU estimate and
the balance plot."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from birdgen_ray.birdclef import LAYOUTS
from birdgen_ray.cli import app
from birdgen_ray.plan import estimate
from birdgen_ray.plan.balance import balance_figure, class_rows
from birdgen_ray.plan.budget import BudgetConfig
from birdgen_ray.plan.build import PlanOptions, build_plan
from birdgen_ray.plan.call_types import SOUND_WORDS, CallTypeVocabulary
from birdgen_ray.plan.metadata import ClassStats, read_classes
from birdgen_ray.plan.prompts import TemplateError, load_templates
from birdgen_ray.plan.tables import InputError
from birdgen_ray.plan.validate import read_plan
from tests.example_data import write_ebird_taxonomy

REPO = Path(__file__).resolve().parents[1]
ODD_TYPES = ["-", "?", "rain", "uncertain", "wing beats", "wind", "male", "Sex uncertain", "whirr of the tail", "Song"]
# Words from those values that must never reach a prompt ("-" and "?" as stand-alone words).
NOT_SOUNDS = re.compile(r"(^|\s)[-?](\s|$)|\brain\b|\buncertain\b|\bmale\b|\bsex\b|\bwhirr\b", re.I)
LAYOUT_2022 = LAYOUTS["2022"]


def write_metadata(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """BirdCLEF 2022 train_metadata.csv rows of (label, type list, scientific, common)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(LAYOUT_2022)
        for i, (label, types, sci, common) in enumerate(rows):
            writer.writerow(
                [
                    label,
                    "[]",
                    types,
                    "19.5",
                    "-155.5",
                    sci,
                    common,
                    "A",
                    "CC",
                    "4.0",
                    "06:00",
                    "u",
                    f"{label}/XC{i}.ogg",
                ]
            )
    return path


@pytest.fixture
def hawaii(tmp_path):
    rows = []
    for label, sci, common, n in [
        ("hawpet1", "Pterodroma sandwichensis", "Hawaiian Petrel", 6),
        ("lessca", "Aythya affinis", "Lesser Scaup", 4),
        ("sheowl", "Asio flammeus", "Short-eared Owl", 5),
        ("eurwre", "Troglodytes troglodytes", "Eurasian Wren", 9),
        ("laysan", "Phoebastria immutabilis", "Laysan Albatross", 3),
    ]:
        for j in range(n):
            types = [ODD_TYPES[len(rows) % len(ODD_TYPES)]] + (["call"] if j % 3 == 0 else [])
            rows.append((label, str(types), sci, common))
    return write_metadata(tmp_path / "train_metadata.csv", rows), write_ebird_taxonomy(
        tmp_path / "eBird_Taxonomy_v2021.csv"
    )


def plan(classes, target=40, **kw):
    return build_plan(classes, PlanOptions(BudgetConfig(target=target), **kw), load_templates())


def test_prompts_on_odd_type_values_hold_no_placeholder_or_noise_tag(hawaii):
    metadata, _ = hawaii
    result = plan(read_classes(metadata))
    words = set(SOUND_WORDS) | {"song", "call"}
    assert set(result.table["call_type"].to_pylist()) <= words
    assert "wing beats" in set(result.table["call_type"].to_pylist())  # a real sound type is kept
    for prompt in result.table["prompt"].to_pylist():
        assert not NOT_SOUNDS.search(prompt), prompt
    report = result.call_types
    assert {"-", "?", "rain", "uncertain", "wind", "male", "sex uncertain"} <= set(report.dropped)
    assert set(report.unmapped) == {"whirr of the tail"}  # no sound word: left out, not pasted in
    assert "wing beats" in report.mapped and report.dropped["-"] >= 1


def test_call_type_vocabulary_maps_xeno_canto_phrases():
    vocab = CallTypeVocabulary()
    assert vocab.classify("Nocturnal flight call") == ("mapped", "flight call")
    assert vocab.classify("call, flight call") == ("mapped", "flight call")  # the longest phrase wins
    assert vocab.classify("begging calls") == ("mapped", "begging call")
    assert vocab.classify("call?") == ("mapped", "call")
    assert vocab.classify("juvenile / adult") == ("dropped", "")
    assert vocab.classify("--") == ("dropped", "")
    assert vocab.classify("whirr of the tail") == ("unmapped", "")


def test_the_ebird_taxonomy_loads_with_its_own_column_names(hawaii):
    metadata, taxonomy = hawaii
    classes = {c.label: c for c in read_classes(metadata, taxonomy)}
    assert set(classes) == {"hawpet1", "lessca", "sheowl", "eurwre", "laysan"}  # not every eBird species
    assert classes["hawpet1"].order == "Procellariiformes"
    assert classes["hawpet1"].family.startswith("Procellariidae")
    assert {c.taxon_class for c in classes.values()} == {"Aves"}
    assert classes["sheowl"].common_name == "Short-eared Owl"


def test_taxonomy_errors_quote_columns_as_the_file_spells_them(tmp_path, hawaii):
    metadata, _ = hawaii
    bad = tmp_path / "tax.csv"
    bad.write_text("TAXON_ORDER,Species_Code_X,PRIMARY_COM_NAME\n1,a,b\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_classes(metadata, bad)
    assert "'TAXON_ORDER', 'Species_Code_X', 'PRIMARY_COM_NAME'" in str(err.value)
    assert "taxon_order" not in str(err.value)
    short = write_ebird_taxonomy(
        tmp_path / "short.csv", [["1", "species", "lessca", "Lesser Scaup", "A a", "O", "F", "", ""]]
    )
    with pytest.raises(InputError, match="not in the taxonomy"):
        read_classes(metadata, short)
    dup = write_ebird_taxonomy(tmp_path / "dup.csv", [["1", "species", "x", "X", "", "", "", "", ""]] * 2)
    with pytest.raises(InputError, match="column 'SPECIES_CODE' line 3: label listed twice"):
        read_classes(metadata, dup)


SETTINGS = {
    "hawpet1": ("ocean", "sea", "seabird colony", "island", "headland"),
    "laysan": ("ocean", "albatross colony", "island"),
    "lessca": ("lake", "marsh", "pond", "river", "estuary"),
    "sheowl": ("dusk", "evening"),  # a Short-eared Owl hunts open country at dusk, not a forest at night
}


def test_seabird_duck_and_owl_classes_get_fitting_settings(hawaii):
    metadata, taxonomy = hawaii
    result = plan(read_classes(metadata, taxonomy))
    rows = result.table.select(["label", "prompt"]).to_pylist()
    for label, words in SETTINGS.items():
        prompts = [r["prompt"].lower() for r in rows if r["label"] == label]
        assert prompts
        for prompt in prompts:
            assert any(w in prompt for w in words), (label, prompt)
            assert "rainforest" not in prompt and "garden" not in prompt and "mountain forest" not in prompt
    without = plan(read_classes(metadata))  # no order or family: the land-bird settings of Aves
    assert not any("ocean" in p.lower() for p in without.table["prompt"].to_pylist())


def test_user_overrides_per_label_order_and_family(tmp_path):
    shipped = (REPO / "birdgen_ray" / "data" / "prompt_templates.toml").read_text(encoding="utf-8")
    path = tmp_path / "mine.toml"
    path.write_text(
        shipped
        + '\n[labels.lessca]\nhabitats = ["on a frozen harbour"]\n'
        + '[families.Strigidae]\nhabitats = ["in a barn at midnight"]\n',
        encoding="utf-8",
    )
    templates = load_templates(path)
    scaup = ClassStats("lessca", 3, "Lesser Scaup", "Aythya affinis", order="Anseriformes", family="Anatidae (Ducks)")
    owl = ClassStats("tawowl1", 3, "Tawny Owl", "Strix aluco", order="Strigiformes", family="Strigidae (Owls)")
    assert templates.for_stats(scaup).habitats == ("on a frozen harbour",)
    assert templates.for_stats(owl).habitats == ("in a barn at midnight",)
    assert templates.for_stats(owl).descriptors == load_templates().for_stats(owl).descriptors  # the order's


def test_prompt_styles_are_mixed_and_recorded(hawaii):
    metadata, taxonomy = hawaii
    classes = read_classes(metadata, taxonomy)
    mixed = plan(classes)
    assert set(mixed.table["prompt_style"].to_pylist()) == {"caption", "descriptive", "tags"}
    only = plan(classes, prompt_styles=("tags",))
    assert set(only.table["prompt_style"].to_pylist()) == {"tags"}
    descriptors = set(load_templates().for_stats(classes[0]).descriptors)
    assert any(any(d in p for d in descriptors) for p in mixed.table["prompt"].to_pylist())
    with pytest.raises(TemplateError, match="unknown style.*haiku"):
        plan(classes, prompt_styles=("haiku",))


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.mark.slow  # several plan runs
def test_plan_cli_is_byte_identical_and_a_higher_target_keeps_earlier_rows(hawaii, tmp_path):
    metadata, taxonomy = hawaii
    common = ("plan", metadata, "--taxonomy", taxonomy, "--seed", 3)
    for name, target in (("a", 20), ("b", 20), ("c", 35)):
        result = cli(*common, "--target", target, "-o", tmp_path / f"{name}.parquet")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    small, big = read_plan(str(tmp_path / "a.parquet")), read_plan(str(tmp_path / "c.parquet"))
    assert set(small["clip_id"].to_pylist()) < set(big["clip_id"].to_pylist())
    assert "estimated GPU time" in result.output and "NVIDIA H200" in result.output and "estimate" in result.output
    assert "dropped" in result.output and "'-'" in result.output  # the summary shows what was dropped
    with open(tmp_path / "c.balance_classes.csv", newline="", encoding="utf-8") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert "wing beats:" in "".join(r["call_types"] for r in rows.values())
    assert "-:" in "".join(r["dropped_types"] for r in rows.values())


def test_the_estimate_uses_the_benchmarks_figure():
    text = (REPO / "BENCHMARKS.md").read_text(encoding="utf-8")
    row = re.search(r"\| batch 64, DPM-Solver 25 \| ([0-9.]+) \|", text)
    assert row and float(row.group(1)) == estimate.REFERENCE_SECONDS_PER_CLIP
    one = estimate.estimate_gpu_time([5.0] * 1000)
    assert one.gpu_seconds == pytest.approx(1000 * 0.0386)
    assert estimate.estimate_gpu_time([10.0] * 1000).gpu_seconds == pytest.approx(2 * one.gpu_seconds)


def test_balance_plot_has_a_log_count_axis_and_names_the_topped_up_classes():
    classes = [ClassStats(f"c{i:03d}", 1 + i * 5, taxon_class="Aves") for i in range(100)]
    result = build_plan(classes, PlanOptions(BudgetConfig(target=30)), load_templates())
    rows = class_rows(classes, result.allocations)
    fig = balance_figure(rows, 30)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    named = {t.get_text() for t in ax.get_xticklabels()}
    assert named == {r["label"] for r in rows if r["synthetic_count"] > 0} and len(named) == 6


def test_without_order_or_family_the_plan_says_how_to_get_them(hawaii, tmp_path):
    metadata, _ = hawaii
    result = cli("plan", metadata, "--target", 10, "-o", tmp_path / "p.parquet")
    assert result.exit_code == 0, result.output
    assert "--taxonomy eBird_Taxonomy_v2021.csv" in result.output


def test_a_counts_file_may_carry_order_and_family(tmp_path):
    counts = tmp_path / "counts.csv"
    counts.write_text("label,count,common_name,order,family\nsheowl,3,Short-eared Owl,Strigiformes,Strigidae\n")
    (owl,) = read_classes(counts)
    assert (owl.order, owl.family) == ("Strigiformes", "Strigidae")
    assert all("night" in h for h in load_templates().for_stats(owl).habitats)
