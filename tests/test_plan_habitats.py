"""Habitats and sound words that fit the species: every BirdCLEF order, owls by genus and species,
ducks that do not honk, Hawaiian endemics on Pacific islands, and no bird named only in Latin."""

from __future__ import annotations

from collections import Counter

import pytest

from birdgen_ray.plan.metadata import ClassStats, read_classes
from birdgen_ray.plan.prompts import TemplateError, clip_prompt, load_templates

# The eBird orders (ORDER1) of the BirdCLEF 2021 (the Americas), 2022 (Hawaii), 2023 (Kenya) and
# 2024 (India) species, with the orders other lists split off (potoos, oilbird, frogmouths).
BIRDCLEF_ORDERS = """
Accipitriformes Anseriformes Apodiformes Bucerotiformes Caprimulgiformes Cariamiformes Cathartiformes
Charadriiformes Ciconiiformes Coliiformes Columbiformes Coraciiformes Cuculiformes Eurypygiformes
Falconiformes Galbuliformes Galliformes Gaviiformes Gruiformes Musophagiformes Nyctibiiformes
Opisthocomiformes Otidiformes Passeriformes Pelecaniformes Phaethontiformes Phoenicopteriformes Piciformes
Podicipediformes Procellariiformes Psittaciformes Pterocliformes Rheiformes Sphenisciformes
Steatornithiformes Strigiformes Struthioniformes Suliformes Tinamiformes Trogoniformes
""".split()
TEMPLATES = load_templates()


def bird(label, common, scientific, order="", family="", region="") -> ClassStats:
    return ClassStats(label, 3, common, scientific, "Aves", order, family, region, Counter({"call": 2, "song": 1}))


def prompts(stats: ClassStats, n: int = 60) -> list[str]:
    return [clip_prompt(stats, k, 0, TEMPLATES).prompt for k in range(n)]


@pytest.mark.parametrize("order", BIRDCLEF_ORDERS)
def test_every_birdclef_order_has_its_own_habitats(order):
    section = TEMPLATES.sections["orders"].get(order.lower())
    assert section is not None, f"no [orders.{order}]"
    land_birds = TEMPLATES.for_class("Aves").habitats
    if order == "Passeriformes":  # the land-bird settings are the passerines' own
        assert "habitats" not in section and TEMPLATES.for_stats(bird("x", "X", "", order)).habitats == land_birds
    else:
        assert section.get("habitats") and tuple(section["habitats"]) != land_birds, f"[orders.{order}] habitats"


def test_tropicbirds_are_at_sea_or_on_cliffs_never_in_woodland():
    tropicbird = bird("whttro", "White-tailed Tropicbird", "Phaethon lepturus", "Phaethontiformes", "Phaethontidae")
    habitats = TEMPLATES.for_stats(tropicbird).habitats
    assert all(any(w in h for w in ("sea", "ocean", "cliff")) for h in habitats)
    assert not any("wood" in p or "forest" in p for p in prompts(tropicbird))


def test_owls_by_family_genus_and_species():
    family = "Strigidae (Owls)"
    short_eared = bird("sheowl", "Short-eared Owl", "Asio flammeus", "Strigiformes", family)
    texts = prompts(short_eared)
    assert not any("forest" in p for p in texts)
    assert any("open grassland at dusk" in p for p in texts)
    long_eared = bird("loeowl", "Long-eared Owl", "Asio otus", "Strigiformes", family)
    assert all("night" in h for h in TEMPLATES.for_stats(long_eared).habitats)
    burrowing = bird("burowl", "Burrowing Owl", "Athene cunicularia", "Strigiformes", family)
    assert not any("forest" in h for h in TEMPLATES.for_stats(burrowing).habitats)
    barn = bird("brnowl", "Barn Owl", "Tyto alba", "Strigiformes", "Tytonidae (Barn-Owls)")
    assert "in farmland at night" in TEMPLATES.for_stats(barn).habitats


def test_ducks_do_not_honk_geese_may():
    anatidae = "Anatidae (Ducks, Geese, and Waterfowl)"
    duck = bird("mallar3", "Mallard", "Anas platyrhynchos", "Anseriformes", anatidae)
    assert not any("honk" in p.lower() for p in prompts(duck, 200))
    assert not any("honk" in w for s in TEMPLATES.for_stats(duck).sounds.values() for w in s)
    goose = bird("cangoo", "Canada Goose", "Branta canadensis", "Anseriformes", anatidae)
    assert "honking" in TEMPLATES.for_stats(goose).descriptors


def test_hawaiian_endemics_are_on_pacific_islands_by_genus_family_or_region_column(tmp_path):
    finches = "Fringillidae (Finches, Euphonias, and Allies)"
    apapane = bird("apapan", "Apapane", "Himatione sanguinea", "Passeriformes", finches)
    texts = prompts(apapane)
    assert not any("temperate forest" in p for p in texts)
    assert all(any(w in p for w in ("Hawaiian", "Pacific island", "volcano")) for p in texts)
    oo = bird("kauoo", "Kauai Oo", "Moho braccatus", "Passeriformes", "Mohoidae (Hawaiian Honeyeaters)")
    assert TEMPLATES.for_stats(oo).habitats == TEMPLATES.for_stats(apapane).habitats
    house_finch = bird("houfin", "House Finch", "Haemorhous mexicanus", "Passeriformes", finches)
    assert not any("Hawaiian" in h for h in TEMPLATES.for_stats(house_finch).habitats)
    # a region column says so for any class
    counts = tmp_path / "counts.csv"
    counts.write_text(
        "label,count,common_name,scientific_name,region\nhoufin,3,House Finch,Haemorhous mexicanus,Hawaii\n"
    )
    (stats,) = read_classes(counts)
    assert stats.region == "Hawaii"
    assert TEMPLATES.for_stats(stats).habitats == TEMPLATES.for_stats(apapane).habitats
    # an order that knows better still wins over the region: a Hawaiian shearwater is at sea
    shearwater = bird("newshe", "Newell's Shearwater", "Puffinus newelli", "Procellariiformes", "", "Hawaii")
    assert all("Hawaiian" not in h for h in TEMPLATES.for_stats(shearwater).habitats)


def test_no_prompt_names_a_bird_only_by_its_scientific_name():
    classes = [
        bird("sheowl", "Short-eared Owl", "Asio flammeus", "Strigiformes", "Strigidae (Owls)"),
        bird("apapan", "Apapane", "Himatione sanguinea", "Passeriformes", "Fringillidae (Finches)"),
        bird("whttro", "White-tailed Tropicbird", "Phaethon lepturus", "Phaethontiformes"),
        ClassStats("katydi", 2, "Common True Katydid", "Pterophylla camellifolia", "Insecta"),
    ]
    for stats in classes:
        for prompt in prompts(stats, 100):
            if stats.scientific_name in prompt:
                assert stats.common_name in prompt, prompt
    # without a common name the scientific name is all there is: said once, never "X (X)"
    bare = bird("sheowl", "", "Asio flammeus", "Strigiformes")
    assert not any("Asio flammeus (Asio flammeus)" in p or p.count("Asio flammeus") > 1 for p in prompts(bare))


def test_a_template_with_the_scientific_name_alone_is_refused(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        '[default]\ncall_types = ["call"]\nhabitats = ["in a forest"]\nstyles = ["field recording"]\n'
        'templates = ["{sound}, {scientific_name}, {habitat}"]\n[default.sounds]\ndefault = ["animal call"]\n'
    )
    with pytest.raises(TemplateError, match=r"default.templates\[0\]'.*without \{common_name\}"):
        load_templates(path)
