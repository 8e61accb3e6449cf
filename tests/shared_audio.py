"""The real recordings in shared/audio/, beside the repository (override with BIRDGEN_SHARED_DIR)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

AUDIO = Path(os.environ.get("BIRDGEN_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared") / "audio"
needs_audio = pytest.mark.skipif(not AUDIO.is_dir(), reason=f"real recordings not found at {AUDIO}")
