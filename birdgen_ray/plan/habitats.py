"""Which template sections describe a class: its taxon class, eBird order, family and its own label.

Habitats, recording styles, acoustic descriptors and sound phrases follow from what the species is:
an albatross belongs on the ocean, a scaup on a lake, an owl at night. The shipped templates file
holds [orders.<ORDER1>] and [families.<FAMILY>] sections for that (eBird taxonomy names); a user's
file may add [labels.<primary_label>] for one class. Keys match case-insensitively, and a family is
matched by its first word, so eBird's "Procellariidae (Shearwaters and Petrels)" is `procellariidae`.
"""

from __future__ import annotations

from birdgen_ray.plan.metadata import ClassStats


def family_key(family: str) -> str:
    """'Procellariidae (Shearwaters and Petrels)' -> 'procellariidae'."""
    words = family.strip().split()
    return words[0].lower() if words else ""


def override_keys(stats: ClassStats) -> list[tuple[str, str]]:
    """The (table, key) sections of a class, most general first; later ones override earlier ones."""
    keys = [("classes", stats.taxon_class.strip().lower())]
    if stats.order.strip():
        keys.append(("orders", stats.order.strip().lower()))
    if family_key(stats.family):
        keys.append(("families", family_key(stats.family)))
    keys.append(("labels", stats.label.strip().lower()))
    return keys
