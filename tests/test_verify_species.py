"""Class -> BirdNET label: exact scientific names, a mapping file that overrides or fills in, unverifiable."""

from __future__ import annotations

import pytest

from birdgen_ray.verify.species import MappingError, describe_unverifiable, read_mapping, resolve_species
from tests.real_audio import birdnet_or_skip

birdnet_or_skip()
from birdgen_ray.verify.birdnet import birdnet_labels  # noqa: E402

LABELS = birdnet_labels()


def _index(scientific: str) -> int:
    return next(i for i, name in enumerate(LABELS) if name.startswith(scientific + "_"))


def test_scientific_names_match_exactly_and_a_mapping_overrides_or_fills_in(tmp_path):
    classes = {
        "woothr": "Hylocichla mustelina",
        "amered": "setophaga ruticilla",  # wrong case: no exact match
        "gptoad": "Anaxyrus cognatus",  # an amphibian BirdNET knows: verified like a bird
        "nosuch": "Nonexistens fictus",
        "blank": None,
    }
    species = resolve_species(classes, LABELS)
    assert species.index == {"woothr": _index("Hylocichla mustelina"), "gptoad": _index("Anaxyrus cognatus")}
    assert species.unverifiable == ("amered", "blank", "nosuch")

    mapping = tmp_path / "map.csv"
    mapping.write_text(
        "label,birdnet_label\n"
        "amered,Setophaga ruticilla_American Redstart\n"  # the whole label
        "woothr,Catharus fuscescens\n"  # only the scientific name; overrides the exact match
        "other,Poecile atricapillus\n"  # a class not in the plan: ignored
    )
    species = resolve_species(classes, LABELS, read_mapping(mapping))
    assert species.target("amered") == _index("Setophaga ruticilla")
    assert species.target("woothr") == _index("Catharus fuscescens")
    assert species.target("other") is None
    assert species.unverifiable == ("blank", "nosuch")
    line = describe_unverifiable(species)
    assert "2 classes have no BirdNET label" in line and "blank, nosuch" in line
    assert describe_unverifiable(resolve_species({"woothr": "Hylocichla mustelina"}, LABELS)) is None


def test_a_bad_mapping_file_is_named_with_its_row(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("label,birdnet_label\nwoothr,Hylocichla mustelina\nwoothr,Catharus fuscescens\n")
    with pytest.raises(MappingError, match=r"map.csv row 3: label 'woothr' is mapped twice"):
        read_mapping(path)
    path.write_text("label,species\nwoothr,x\n")
    with pytest.raises(MappingError, match="needs the columns label,birdnet_label"):
        read_mapping(path)
    with pytest.raises(MappingError, match="'woothr' -> 'Hylocichla mustelinus' is not a BirdNET v2.4 label"):
        resolve_species({"woothr": None}, LABELS, {"woothr": "Hylocichla mustelinus"}, "map.csv")
    with pytest.raises(MappingError, match="file not found"):
        read_mapping(tmp_path / "absent.csv")


def test_plan_names_the_classes_birdnet_cannot_check(tmp_path):
    from typer.testing import CliRunner

    from birdgen_ray.cli import app
    from tests.example_data import ExampleClass, write_counts

    counts = write_counts(
        tmp_path / "counts.csv",
        [
            ExampleClass("woothr", 3, scientific_name="Hylocichla mustelina", common_name="Wood Thrush"),
            ExampleClass("gptoad", 2, "Amphibia", scientific_name="Anaxyrus cognatus", common_name="Toad"),
            ExampleClass("fakbrd", 1, scientific_name="Nonexistens fictus", common_name="Fake"),
        ],
    )
    result = CliRunner().invoke(app, ["plan", str(counts), "--target", "4", "-o", str(tmp_path / "plan.parquet")])
    assert result.exit_code == 0, result.output
    assert "species verification: 1 class has no BirdNET label and is unverifiable: fakbrd" in result.output
