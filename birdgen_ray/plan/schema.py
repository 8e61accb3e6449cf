"""The plan table (`plan.parquet`): one row per clip to generate.

Required columns:
  label            string   class label (e.g. BirdCLEF primary_label); it becomes a folder name on
                            export and a comma-separated CLI value, so no '/', '\\', ',', control
                            characters (newline, tab, NUL), '.', '..'
  prompt           string   text prompt, non-empty
  seed             int64    >= 0; with the prompt and settings it fully decides the audio
  duration_s       float64  > 0, seconds
Optional columns:
  clip_id          string   stable id, safe as a file name; derived from the row's content if absent
  negative_prompt  string   defaults to DEFAULT_NEGATIVE_PROMPT when absent or null
Optional reference columns (plans made with `plan --references`; null on text-only rows):
  reference        string   recording the row starts from, relative to reference_root (or absolute)
  reference_root   string   where the references are (local folder or fsspec URI)
  reference_start_s float64 >= 0: where the row's window starts in the recording
  strength         float64  in [0, 1]: share of the schedule run from the noised reference
  reference_confidence float64 in [0, 1]: BirdNET's confidence in the class on the row's window
                            (null: the window was picked by energy)
  reference_ceiling float64 in [0, 1]: the class's BirdNET confidence on its chosen windows
                            band-limited to the model's band (what `--min-species-confidence 0.5x` scales)
Any other column (taxon class, common name, budget rule, ...) is carried into the index unchanged.

Checking a table against it (every problem at once, naming the column and the 0-based rows) and
reading a plan file: plan/validate.py.
"""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa

REQUIRED_COLUMNS = {"label": "string", "prompt": "string", "seed": "integer", "duration_s": "number"}
OPTIONAL_COLUMNS = {
    "clip_id": "string",
    "negative_prompt": "string",
    "reference": "string",
    "reference_root": "string",
    "reference_start_s": "number",
    "strength": "number",
    "reference_confidence": "number",
    "reference_ceiling": "number",
}
MAX_DURATION_S = 60.0
_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
# One label rule, applied by plan, submit, --dry-run and export: labels become folder names (export)
# and comma-separated values (--label, --include), and are shown in terminals. Letters, digits and
# "_.-", 1-64 characters: no space, control, format, bidi-override or zero-width character.
MAX_LABEL_CHARS = 64
UNSAFE_LABEL = re.compile(
    rf"[^\w.-]|^\.{{1,2}}$|^.{{{MAX_LABEL_CHARS + 1},}}", re.DOTALL
)  # Python's \w: letters, digits, _
UNSAFE_LABEL_RE2 = rf"[^\p{{L}}\p{{N}}_.-]|^\.{{1,2}}$|^(?s:.){{{MAX_LABEL_CHARS + 1},}}"  # the same rule in RE2
UNSAFE_LABEL_PROBLEM = (
    f"label is not 1-{MAX_LABEL_CHARS} letters, digits, '_', '.' or '-' (a space, a control character, a format, "
    "bidi or zero-width character, or '.' or '..'; labels become folder names on export "
    "and comma-separated values of --label/--include)"
)
# Tar (USTAR) member names hold 100 bytes: "<clip_id>.json" must fit. No "." either: WebDataset
# readers split a member name at its first dot into key and extension.
CLIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,94}$")
PLAN_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("label", pa.string()),
        ("prompt", pa.string()),
        ("negative_prompt", pa.string()),
        ("seed", pa.int64()),
        ("duration_s", pa.float64()),
    ]
)

# the columns `plan` writes beyond the core ones
EXTRA_SCHEMA = pa.schema(
    [
        ("taxon_class", pa.string()),
        ("common_name", pa.string()),
        ("scientific_name", pa.string()),
        ("call_type", pa.string()),  # a sound word (call_types.py), never a raw Xeno-canto `type` value
        ("prompt_style", pa.string()),  # the templates' prompt style the row was written in
        ("take", pa.int64()),  # k-th synthetic clip of its class, from 0
        ("real_count", pa.int64()),  # real recordings of the class
        ("synthetic_count", pa.int64()),  # synthetic clips planned for the class
        ("rule", pa.string()),  # budget rule that decided synthetic_count
    ]
)
FULL_SCHEMA = pa.schema(list(PLAN_SCHEMA) + list(EXTRA_SCHEMA))


class PlanError(ValueError):
    """An invalid plan. `problems` lists one readable line per problem."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        # one problem, one line; several, one line each under the plan's name
        joined = problems[0] if len(problems) == 1 else "\n  " + "\n  ".join(problems)
        super().__init__(f"invalid plan {source}: {joined}".replace(": \n", ":\n"))


def make_clip_id(
    label: str,
    prompt: str,
    negative_prompt: str,
    seed: int,
    duration_s: float,
    reference: str | None = None,
    reference_start_s: float | None = None,
    strength: float | None = None,
) -> str:
    """A file-name-safe id that follows from the row's content: same row, same id, on any machine.

    A reference-conditioned row is another clip than the same row without its reference, so its
    recording, window and strength join the key; a text-only row's id is what it always was.
    """
    parts = [label, prompt, negative_prompt, str(int(seed)), repr(float(duration_s))]
    if reference is not None:
        parts += [reference, repr(float(reference_start_s or 0.0)), repr(float(strength or 0.0))]
    key = "\x1f".join(parts)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    stem = _SAFE.sub("-", label).strip("-")[:48] or "clip"
    return f"{stem}-{digest}"
