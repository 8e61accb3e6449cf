"""Which template sections describe a class: taxon class, region, eBird order, family, genus, species, label.

Habitats, recording styles, acoustic descriptors and sound phrases follow from what the species is:
an albatross belongs on the ocean, a scaup on a lake, an owl at night, a Short-eared Owl over open
grassland at dusk. The shipped templates file holds [orders.<ORDER1>] and [families.<FAMILY>]
sections for that (eBird taxonomy names), [genera.<Genus>] and [species.<Scientific name>] where a
family is too coarse (owls, geese), and [regions.<region>] for where a class lives; a user's file may
add [labels.<primary_label>] for one class. Keys match case-insensitively, and a family is matched by
its first word, so eBird's "Procellariidae (Shearwaters and Petrels)" is `procellariidae`.

A class's region is its input's `region` column; without one, a Hawaiian endemic is recognised by
its eBird family (the Hawaiian honeyeaters, Mohoidae) or its genus (the honeycreepers are finches
in eBird's taxonomy, so their genera name them), and gets [regions.hawaii]. The region comes right
after the taxon class: an order or family that knows better (a shearwater's ocean) still overrides it.
"""

from __future__ import annotations

from birdgen_ray.plan.metadata import ClassStats

HAWAIIAN_FAMILIES = frozenset({"mohoidae", "drepanididae"})  # 'o'os; honeycreepers where a list splits them
# Genera found only on the Hawaiian Islands (eBird/Clements 2021): the honeycreepers, the 'elepaios,
# the Hawaiian thrushes are not among them (Myadestes also lives in the Americas).
HAWAIIAN_GENERA = frozenset(
    {
        "akialoa", "chasiempis", "chaetoptila", "chloridops", "chlorodrepanis", "ciridops", "drepanis",
        "dysmorodrepanis", "hemignathus", "himatione", "loxioides", "loxops", "magumma", "melamprosops",
        "moho", "oreomystis", "palmeria", "paroreomyza", "pseudonestor", "psittirostra", "rhodacanthis",
        "telespiza", "vestiaria", "viridonia",
    }
)  # fmt: skip
HAWAIIAN_SPECIES = frozenset({"corvus hawaiiensis", "buteo solitarius", "branta sandvicensis", "anas wyvilliana"})


def family_key(family: str) -> str:
    """'Procellariidae (Shearwaters and Petrels)' -> 'procellariidae'."""
    words = family.strip().split()
    return words[0].lower() if words else ""


def genus_key(scientific_name: str) -> str:
    """'Asio flammeus' -> 'asio'."""
    words = scientific_name.strip().split()
    return words[0].lower() if words else ""


def species_key(scientific_name: str) -> str:
    """'Asio flammeus sandwichensis' -> 'asio flammeus' (a subspecies is its species here)."""
    return " ".join(scientific_name.strip().lower().split()[:2])


def region_key(stats: ClassStats) -> str:
    """The class's region: its `region` column, else 'hawaii' for a Hawaiian endemic, else ''."""
    if stats.region.strip():
        return stats.region.strip().lower()
    hawaiian = (
        family_key(stats.family) in HAWAIIAN_FAMILIES
        or genus_key(stats.scientific_name) in HAWAIIAN_GENERA
        or species_key(stats.scientific_name) in HAWAIIAN_SPECIES
    )
    return "hawaii" if hawaiian else ""


def override_keys(stats: ClassStats) -> list[tuple[str, str]]:
    """The (table, key) sections of a class, most general first; later ones override earlier ones."""
    keys = [("classes", stats.taxon_class.strip().lower())]
    if region_key(stats):
        keys.append(("regions", region_key(stats)))
    if stats.order.strip():
        keys.append(("orders", stats.order.strip().lower()))
    if family_key(stats.family):
        keys.append(("families", family_key(stats.family)))
    if genus_key(stats.scientific_name):
        keys.append(("genera", genus_key(stats.scientific_name)))
        keys.append(("species", species_key(stats.scientific_name)))
    keys.append(("labels", stats.label.strip().lower()))
    return keys
