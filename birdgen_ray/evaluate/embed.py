"""BirdNET embeddings of every real recording and synthetic clip, in 3 s windows, cached in Parquet under
EVAL/cache/ keyed by a hash of the audio file, so a killed evaluation resumes where it stopped.

Real recordings: one cache file per recording (per low-pass cutoff). Synthetic clips: one per shard,
keyed by the shard index's hash; a shard whose `<id>.embeddings.parquet` the verifier already wrote
is read from the output instead of being embedded again.
"""

from __future__ import annotations

import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from birdgen_ray.evaluate.inputs import RealRecording, SyntheticOutput
from birdgen_ray.index.reader import as_output, read_clip_bytes
from birdgen_ray.io.audio import decode_audio, decode_wav, resample
from birdgen_ray.io.layout import SHARDS_DIR
from birdgen_ray.io.storage import write_file_atomic
from birdgen_ray.verify.birdnet import SAMPLE_RATE, WINDOW_S, BirdNet, split_windows

CACHE_DIR = "cache"
MIN_LAST_WINDOW_S = 1.0  # a last window with less real audio than this is mostly padding: dropped
CHECKSUM_KEY = b"content_sha256"  # of the rms and embedding columns' bytes, in the file's metadata


@dataclass(frozen=True)
class Windows:
    """Window embeddings and, per window, the index of the recording or clip it came from."""

    embeddings: np.ndarray  # [windows, 1024] float32
    owner: np.ndarray  # [windows] int
    rms: np.ndarray  # [windows] float32; 1.0 where only a reused embedding is known


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lowpass(audio: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """Everything above `cutoff_hz` removed: soxr's steep anti-alias filter, down to 2 x cutoff and back."""
    low_rate = int(2 * cutoff_hz)
    if low_rate >= rate:
        return audio
    return resample(resample(audio, rate, low_rate), low_rate, rate)[: len(audio)]


def window_audio(audio: np.ndarray, rate: int) -> np.ndarray:
    windows = split_windows(audio, rate)
    real_samples = round(len(audio) * SAMPLE_RATE / rate)
    tail = real_samples - (len(windows) - 1) * int(SAMPLE_RATE * WINDOW_S)
    if len(windows) > 1 and tail < MIN_LAST_WINDOW_S * SAMPLE_RATE:
        windows = windows[:-1]
    return windows


def _embed(model: BirdNet, windows: np.ndarray, batch_size: int) -> np.ndarray:
    parts = [model.infer(windows[i : i + batch_size])[1] for i in range(0, len(windows), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def _table(embeddings: np.ndarray, rms: np.ndarray, model_id: str, **columns) -> pa.Table:
    flat = pa.array(embeddings.reshape(-1), pa.float32())
    table = pa.table(
        {
            **columns,
            "rms": pa.array(rms, pa.float32()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, embeddings.shape[1]),
        }
    )
    return table.replace_schema_metadata({"model_id": model_id, CHECKSUM_KEY: _checksum(table)})


def _checksum(table: pa.Table) -> str:
    digest = hashlib.sha256()
    for name in table.column_names:
        if name == "embedding":
            digest.update(np.ascontiguousarray(_as_array(table[name])).tobytes())
        elif name == "rms":
            digest.update(table[name].to_numpy().astype(np.float32).tobytes())
        else:
            digest.update("\0".join(map(str, table[name].to_pylist())).encode())
    return digest.hexdigest()


def _save(path: Path, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    write_file_atomic(path, buf.getvalue())


def _load(path: Path, model_id: str) -> pa.Table | None:
    """The cached table, or None if absent, made by another model, or damaged (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        damaged = metadata.get(CHECKSUM_KEY, b"").decode() != _checksum(table)
    except Exception as exc:  # a truncated or corrupt file fails in many ways inside Arrow
        damaged, metadata = f"{type(exc).__name__}", {}
    if damaged:
        reason = damaged if isinstance(damaged, str) else "checksum mismatch"
        print(f"warning: cache file {path} is damaged ({reason}): recomputing it", file=sys.stderr)
        return None
    return table if metadata.get(b"model_id", b"").decode() == model_id else None


def _as_array(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks()
    return flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), -1).astype(np.float32)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def embed_real(
    recordings: list[RealRecording],
    cache: Path,
    model: BirdNet,
    cutoff_hz: float | None = None,
    batch_size: int = 4,
    progress: bool = True,
) -> tuple[Windows, list[str]]:
    """(windows of every recording, each recording's file hash); `cutoff_hz` low-passes before embedding."""
    folder = cache / CACHE_DIR / "real"
    suffix = f"-lowpass{int(cutoff_hz)}" if cutoff_hz else ""
    parts, hashes = [], []
    with _progress(progress) as bar:
        task = bar.add_task(f"embedding real recordings{suffix.replace('-', ' ')}", total=len(recordings))
        for i, recording in enumerate(recordings):
            data = Path(recording.path).read_bytes()
            hashes.append(file_hash(data))
            path = folder / f"{hashes[-1]}{suffix}.parquet"
            table = _load(path, model.model_id)
            if table is None:
                audio, rate = decode_audio(data, name=f"{recording.path} ({recording.where})")
                if cutoff_hz:
                    audio = lowpass(audio, rate, cutoff_hz)
                windows = window_audio(audio, rate)
                rms = np.sqrt((windows.astype(np.float64) ** 2).mean(1))
                table = _table(_embed(model, windows, batch_size), rms, model.model_id)
                _save(path, table)
            parts.append((i, table))
            bar.advance(task)
    return _concat(parts), hashes


def embed_synthetic(
    output: SyntheticOutput, cache: Path, model: BirdNet, batch_size: int = 4, progress: bool = True
) -> Windows:
    """Windows of every clip in `output.index` (owner = the clip's row in it)."""
    out = as_output(output.uri, output.storage_options)
    row_of = {clip_id: i for i, clip_id in enumerate(output.index["clip_id"].to_pylist())}
    shards = sorted(set(output.index["shard"].to_pylist()))
    parts = []
    with _progress(progress) as bar:
        task = bar.add_task(f"embedding {output.name}", total=len(shards))
        for shard in shards:
            table = _shard_windows(out, output, shard, cache, model, batch_size)
            ids = table["clip_id"].to_pylist()
            keep = np.array([clip_id in row_of for clip_id in ids], bool)
            owners = np.array([row_of.get(clip_id, -1) for clip_id in ids], int)
            parts.append((owners[keep], table.filter(pa.array(keep))))
            bar.advance(task)
    return _concat(parts)


def _shard_windows(out, output: SyntheticOutput, shard: str, cache: Path, model, batch_size: int) -> pa.Table:
    stem = shard[: -len(".tar")] if shard.endswith(".tar") else shard
    index_rel = f"{stem}.parquet" if stem.startswith(f"{SHARDS_DIR}/") else f"{SHARDS_DIR}/{stem}.parquet"
    key = file_hash(out.read_bytes(index_rel)) if out.exists(index_rel) else file_hash(stem.encode())
    path = cache / CACHE_DIR / "synthetic" / f"{key}.parquet"
    table = _load(path, model.model_id)
    if table is None:
        rows = [r for r in output.index.to_pylist() if r["shard"] == shard]
        ids, windows = [], []
        for row in rows:
            audio, rate = decode_wav(read_clip_bytes(out, row))
            clip_windows = window_audio(audio, rate)
            ids += [row["clip_id"]] * len(clip_windows)
            windows.append(clip_windows)
        stacked = np.concatenate(windows)
        rms = np.sqrt((stacked.astype(np.float64) ** 2).mean(1))
        table = _table(_embed(model, stacked, batch_size), rms, model.model_id, clip_id=pa.array(ids, pa.string()))
        _save(path, table)
    return table


def _concat(parts: list[tuple[int | np.ndarray, pa.Table]]) -> Windows:
    embeddings, owners, rms = [], [], []
    for owner, table in parts:
        embeddings.append(_as_array(table["embedding"]))
        owners.append(np.full(table.num_rows, owner) if np.isscalar(owner) else owner)
        rms.append(table["rms"].to_numpy().astype(np.float32))
    if not embeddings:
        return Windows(np.zeros((0, 1024), np.float32), np.zeros(0, int), np.zeros(0, np.float32))
    return Windows(np.concatenate(embeddings), np.concatenate(owners).astype(int), np.concatenate(rms))
