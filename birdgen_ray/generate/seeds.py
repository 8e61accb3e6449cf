"""Seeds for retries and candidate takes: deterministic functions of the row seed.

A clip's audio must follow from its plan row alone, on any machine and in any batch, so every
extra generation (a retry after a rejected clip, or candidate take j) gets a seed derived from the
row seed with sha256 rather than from a random source or a counter shared across rows.
"""

from __future__ import annotations

import hashlib

MAX_SEED = 2**63  # derived seeds fit int64 (the plan's seed column) and torch.Generator


def derive_seed(seed: int, purpose: str, index: int) -> int:
    digest = hashlib.sha256(f"birdgen-ray:{purpose}:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % MAX_SEED


def attempt_seed(row_seed: int, attempt: int) -> int:
    """Seed of gate attempt `attempt`: the row seed first, then one derived seed per retry."""
    return int(row_seed) if attempt == 0 else derive_seed(row_seed, "retry", attempt)


def take_seed(seed: int, take: int) -> int:
    """Seed of candidate take `take` of an attempt whose seed is `seed` (take 0 uses it as is)."""
    return int(seed) if take == 0 else derive_seed(seed, "take", take)
