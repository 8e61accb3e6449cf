"""The Ray Jobs submission id of a run: one plan into one output gets one id.

`ray job submit --submission-id ID` is refused by the job server when ID already exists, so a
duplicate submission of the same plan into the same output never starts a second writer. The id is
also a valid Kubernetes name (RFC 1035 label, at most 47 characters as KubeRay requires of a RayJob),
so the same id names the RayJob and `kubectl create` refuses a duplicate too.

Resuming after a failed or stopped job on the same Ray cluster needs a fresh id: pass `attempt=2`
(3, ...). The output's own lock and its committed shards make every attempt safe.
"""

from __future__ import annotations

import hashlib
import os

import fsspec

ID_PREFIX = "birdgen-"
_CHUNK = 1 << 20


def plan_digest(plan_path: str, storage_options: dict | None = None) -> str:
    """SHA-256 of the plan file's bytes (local path or any fsspec URI such as s3://)."""
    digest = hashlib.sha256()
    try:
        with fsspec.open(plan_path, "rb", **(storage_options or {})) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        raise FileNotFoundError(f"plan file not found: {plan_path}") from None
    return digest.hexdigest()


def normalize_out(out: str) -> str:
    """One spelling per output: URIs lose trailing slashes, local folders become absolute."""
    if "://" in out:
        scheme, rest = out.split("://", 1)
        return f"{scheme.lower()}://{rest.rstrip('/')}"
    return os.path.abspath(os.path.expanduser(out))


def submission_id(plan_path: str, out: str, attempt: int = 1, storage_options: dict | None = None) -> str:
    """`birdgen-<16 hex>` from the plan's hash and the output; `-r<attempt>` from attempt 2 on."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    key = f"{plan_digest(plan_path, storage_options)}\n{normalize_out(out)}"
    job_id = ID_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return job_id if attempt == 1 else f"{job_id}-r{attempt}"
