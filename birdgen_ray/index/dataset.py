"""Training loaders over an output: (audio array, label) pairs, plain or as a torch Dataset.

    from birdgen_ray.index.dataset import iter_training_pairs
    for audio, label in iter_training_pairs("out/", sample_rate=32_000):
        ...

Clips are read one ranged read at a time from their shards (local or s3), so nothing is unpacked
first. By default only clips that passed the quality gate are used, as `birdgen-ray export` does.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from birdgen_ray.index.reader import as_output, open_index, read_clip_bytes, select_labels
from birdgen_ray.io.audio import decode_wav, fit_length, resample
from birdgen_ray.io.layout import has_audio
from birdgen_ray.io.storage import Output

# Index columns a training row keeps: enough to filter by label/verdict and read the clip.
TRAINING_INDEX_COLUMNS = ("clip_id", "label", "verdict", "shard", "offset", "size", "sample_rate")


def training_rows(
    out: str | Output,
    labels: Sequence[str] | None = None,
    include_failed: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> list[dict]:
    """Index rows to train on, in shard order (sequential reads), passed clips only by default."""
    output = as_output(out, storage_options)
    index = open_index(output).select(list(TRAINING_INDEX_COLUMNS))  # what reading a clip needs
    if labels is not None:
        index = select_labels(index, labels, output.uri)
    rows = index.to_pylist()
    if not include_failed:
        rows = [r for r in rows if r["verdict"] == "pass"]
    rows = [r for r in rows if has_audio(r)]  # fail:species clips left out by --drop-species-failures
    return sorted(rows, key=lambda r: (r["shard"], r["offset"]))


def load_audio(out: str | Output, row: dict, sample_rate: int | None = None) -> np.ndarray:
    """One clip as float32 mono, resampled (soxr) when `sample_rate` differs from the stored rate."""
    audio, rate = decode_wav(read_clip_bytes(out, row))
    return audio if sample_rate is None else resample(audio, rate, sample_rate)


def iter_training_pairs(
    out: str | Output,
    labels: Sequence[str] | None = None,
    sample_rate: int | None = None,
    include_failed: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[tuple[np.ndarray, str]]:
    """Yield (float32 mono audio, label) for every clip to train on; `labels` keeps only those classes."""
    output = as_output(out, storage_options)
    for row in training_rows(output, labels, include_failed):
        yield load_audio(output, row, sample_rate), row["label"]


class ClipDataset(torch.utils.data.Dataset):
    """Map-style torch Dataset: item i is (float32 tensor of `num_samples`, class index).

    `classes` fixes the label -> index mapping (pass the real data's class list so indices agree);
    by default it is the sorted labels present; clips of labels not in it are left out.
    `num_samples` crops or zero-pads every clip to one length so the default collate can stack a
    batch. Safe with DataLoader workers: each worker opens the output itself.
    """

    def __init__(
        self,
        out: str,
        classes: Sequence[str] | None = None,
        sample_rate: int | None = None,
        num_samples: int | None = None,
        include_failed: bool = False,
        storage_options: dict[str, Any] | None = None,
    ):
        self.out = str(out)
        self.storage_options = dict(storage_options or {})
        rows = training_rows(self.out, None, include_failed, self.storage_options)
        self.classes = list(classes) if classes is not None else sorted({r["label"] for r in rows})
        self.class_index = {label: i for i, label in enumerate(self.classes)}
        self.rows = [r for r in rows if r["label"] in self.class_index]
        left_out = sorted({r["label"] for r in rows} - set(self.class_index))
        if left_out:  # usually a typo or another taxonomy's codes: say so rather than shrink quietly
            warnings.warn(
                f"{len(rows) - len(self.rows)} clips of {len(left_out)} labels not in `classes` are left out: "
                f"{', '.join(left_out[:10])}{' ...' if len(left_out) > 10 else ''}",
                stacklevel=2,
            )
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self._output: Output | None = None  # opened lazily, once per process

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self._output is None:
            self._output = as_output(self.out, self.storage_options)
        row = self.rows[i]
        audio = load_audio(self._output, row, self.sample_rate)
        if self.num_samples is not None:
            audio = fit_length(audio, self.num_samples)
        return torch.from_numpy(np.ascontiguousarray(audio)), self.class_index[row["label"]]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_output"] = None  # filesystem handles are not shared across processes
        return state
