"""The versions that decide a clip's audio, recorded with every output and compared on resume.

The same plan row, seed and settings give bit-identical audio only under the same torch, diffusers,
transformers, tokenizers, numpy and soxr, and the same model weights: a newer release may change a
kernel, a default or a tokenizer. An output records these with its first committed clip
(`_birdgen/run.json`), in summary.json and in each clip's index row (`versions`), and a run that
would extend it under other versions is refused unless asked to (`--allow-version-change`).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version

AUDIO_PACKAGES = ("torch", "diffusers", "transformers", "tokenizers", "numpy", "soxr")
MODEL_REVISION = "model_revision"  # the key of the model's revision beside the packages
UNKNOWN = "unknown"  # a revision that cannot be resolved where the check runs (a hub id not cached there)


def package_version(name: str) -> str:
    """The installed version, without a local label (torch's "+cpu" and "+cu128" are one release)."""
    try:
        return version(name).split("+", 1)[0]
    except PackageNotFoundError:
        return "not installed"


def audio_versions(model_revision: str = UNKNOWN) -> dict[str, str]:
    """{package: version} for every package that decides the audio, plus the model's revision."""
    return {**{name: package_version(name) for name in AUDIO_PACKAGES}, MODEL_REVISION: model_revision}


def to_json(versions: dict[str, str]) -> str:
    return json.dumps(versions, sort_keys=True)


def version_changes(recorded: dict[str, str], current: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{name: (recorded, current)} for each package or revision that differs. A name either side does not
    know (recorded before it was tracked, or a revision unresolvable here) is no evidence of a change."""
    changes = {}
    for name in (*AUDIO_PACKAGES, MODEL_REVISION):
        old, new = recorded.get(name), current.get(name)
        if old is None or new is None or UNKNOWN in (old, new):
            continue
        if old != new:
            changes[name] = (old, new)
    return changes


def describe_changes(changes: dict[str, tuple[str, str]]) -> str:
    """'transformers 5.24.0 -> 5.25.0, numpy 2.3.5 -> 2.4.6' (the model's revision by that name)."""
    return ", ".join(f"{name} {old} -> {new}" for name, (old, new) in changes.items())
