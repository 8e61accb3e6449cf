"""Which weights `--model` names, as a revision string recorded with every clip (birdgen_ray/versions.py).

- a built-in model: its name and version ("tiny-3", "tiny-stable-audio-1"), the bytes being a
  function of that and torch;
- a local snapshot directory: a digest of its file names and sizes and of its small files' bytes
  (configs, tokenizers), so an edited config or a swapped weight file reads as another revision;
- a hub id: the snapshot commit it resolves to in the local hub cache, or "unknown" where it is not
  cached (the driver of a cluster run need not hold the weights; the actors record theirs).

It never loads the model and never imports torch, so the driver can afford it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from birdgen_ray.config import TINY_MODEL, TINY_MODEL_VERSION, TINY_STABLE_AUDIO_MODEL, TINY_STABLE_AUDIO_MODEL_VERSION
from birdgen_ray.versions import UNKNOWN

SMALL_FILE_BYTES = 16 * 2**20  # hashed whole; larger files (weights) by name and size


BUILTIN_VERSIONS = {TINY_MODEL: TINY_MODEL_VERSION, TINY_STABLE_AUDIO_MODEL: TINY_STABLE_AUDIO_MODEL_VERSION}


def model_revision(model: str) -> str:
    if model in BUILTIN_VERSIONS:
        return f"{model}-{BUILTIN_VERSIONS[model]}"
    directory = Path(os.path.expanduser(model))
    if directory.is_dir():
        return directory_digest(directory)
    return _cached_hub_revision(model)


def directory_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory).as_posix()}\0{size}\0".encode())
        if size <= SMALL_FILE_BYTES:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()[:16]}"


def _cached_hub_revision(repo_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return UNKNOWN
    try:
        found = try_to_load_from_cache(repo_id, "model_index.json")
    except Exception:  # a malformed id or an unreadable cache is not this check's business
        return UNKNOWN
    # .../models--owner--name/snapshots/<commit>/model_index.json
    return f"hub:{Path(found).parent.name}" if isinstance(found, str) else UNKNOWN
