"""`evaluate(config)`: real only against real + synthetic, on held-out real recordings.

1. read the real recordings and the synthetic outputs
2. embed everything with BirdNET (cached under EVAL/cache/)
3. make the folds and check them for leaks
4. per band (full; and real low-passed to the synthetic's bandwidth with --match-bandwidth):
   train every training-set variant's probe per fold, score the held-out recordings, compare
5. per class: Fréchet distance and separability of real and synthetic embeddings
6. write EVAL/evaluation.json and EVAL/index.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from birdgen_ray.evaluate.config import EvaluateConfig
from birdgen_ray.evaluate.embed import Windows, embed_real, embed_synthetic
from birdgen_ray.evaluate.inputs import (
    passed_mask,
    read_real,
    read_synthetic,
    references,
    verified_mask,
)
from birdgen_ray.evaluate.metrics import BootstrapConfig, compare, count_bin
from birdgen_ray.evaluate.page import write_page
from birdgen_ray.evaluate.probe import fit_predict, per_recording
from birdgen_ray.evaluate.protocol import Protocol, check_protocol, make_protocol, ratio_pick, usable_clips
from birdgen_ray.evaluate.similarity import frechet_distance, separability_auc
from birdgen_ray.io.storage import write_file_atomic
from birdgen_ray.verify.birdnet import load_birdnet

REAL_ONLY = "real only"
RESULT_FILE = "evaluation.json"
PAGE_FILE = "index.html"


@dataclass(frozen=True)
class Synthetic:
    """One output's clips as the protocol sees them."""

    name: str
    labels: np.ndarray
    references: list[str | None]
    windows: Windows
    bandwidth_hz: float | None


@dataclass(frozen=True)
class Variant:
    name: str
    output: int | None  # which Synthetic, None for real only
    clips: np.ndarray | None  # mask over its clips


def evaluate(config: EvaluateConfig) -> dict:
    config.out.mkdir(parents=True, exist_ok=True)
    # 1. inputs
    recordings = read_real(config.real)
    labels = np.array([r.label for r in recordings])
    groups = np.array([r.group for r in recordings])
    outputs = read_synthetic(list(config.synthetic), set(labels.tolist()), config.storage_options)

    # 2. embeddings
    model = load_birdnet(config.num_threads)
    real, hashes = embed_real(recordings, config.out, model, None, config.batch_size, config.progress)
    keys = [frozenset({r.name, r.path, r.name.rsplit("/", 1)[-1], h}) for r, h in zip(recordings, hashes)]
    synthetic = []
    for output in outputs:
        bandwidth = output.index["bandwidth_hz"].to_numpy(zero_copy_only=False) if output.index.num_rows else []
        windows = embed_synthetic(output, config.out, model, config.batch_size, config.progress)
        synthetic.append(
            Synthetic(
                name=output.name,
                labels=np.array(output.index["label"].to_pylist()),
                references=references(output.index),
                windows=windows,
                bandwidth_hz=float(np.nanmin(bandwidth)) if len(bandwidth) else None,
            )
        )

    # 3. folds, checked on the full-band embeddings
    protocol = make_protocol(labels, groups, config.folds, config.seed)
    checks = check_protocol(protocol, labels, groups, real.owner, real.embeddings, real.rms, config.seed)
    variants = _variants(outputs, synthetic, protocol, config)

    # 4. + 5. per band
    bands = {"full": real}
    cutoffs = [s.bandwidth_hz for s in synthetic if s.bandwidth_hz]
    if config.match_bandwidth and cutoffs:
        cutoff = min(cutoffs)
        bands[f"matched ({cutoff / 1000:g} kHz)"] = embed_real(
            recordings, config.out, model, cutoff, config.batch_size, config.progress
        )[0]
    class_bins = [count_bin(protocol.real_counts[c]) for c in protocol.classes]
    truth = (labels[:, None] == np.array(protocol.classes)[None, :]).astype(float)
    counted = _counted(labels, protocol)
    results = {}
    for band, real_windows in bands.items():
        scores = {v.name: _cross_validated_scores(v, real_windows, labels, keys, synthetic, protocol, config)
                  for v in variants}  # fmt: skip
        bootstrap = BootstrapConfig(config.bootstrap, config.seed, config.threshold, config.padding_rows)
        results[band] = {
            "variants": compare(truth, scores, REAL_ONLY, class_bins, bootstrap, counted),
            "similarity": {s.name: _similarity(real_windows, labels, groups, s, protocol, config) for s in synthetic},
        }

    # 6. write
    result = {
        "real": {"source": str(config.real), "recordings": len(recordings), "windows": int(len(real.owner))},
        "synthetic": [
            {
                "name": s.name,
                "uri": o.uri,
                "clips": o.index.num_rows,
                "windows": int(len(s.windows.owner)),
                "bandwidth_hz": s.bandwidth_hz,
            }
            for s, o in zip(synthetic, outputs)
        ],  # fmt: skip
        "model_id": model.model_id,
        "classes": [
            {
                "label": c,
                "real_count": protocol.real_counts[c],
                "bin": b,
                "left_out": c in protocol.left_out,
                "synthetic": {s.name: int((s.labels == c).sum()) for s in synthetic},
            }
            for c, b in zip(protocol.classes, class_bins)
        ],  # fmt: skip
        "protocol": {
            **checks,
            "seed": config.seed,
            "bootstrap": config.bootstrap,
            "threshold": config.threshold,
            "padding_rows": config.padding_rows,
            "probe_c": config.probe_c,
            "variants": [v.name for v in variants],
        },  # fmt: skip
        "bands": results,
    }
    write_file_atomic(config.out / RESULT_FILE, json.dumps(_finite(result), indent=2).encode())
    write_page(result, config.out / PAGE_FILE)
    return result


def _counted(labels: np.ndarray, protocol: Protocol) -> np.ndarray:
    """[recordings, classes]: a left-out class is scored among the left-out recordings only.

    Every left-out recording is unlike anything the probe trained on, so against the trained classes'
    recordings any synthetic set, noise included, would rank it first: a novelty detector passing for
    a species detector. Among the left-out recordings all are equally new, and only species matter.
    """
    is_left_out = np.isin(labels, protocol.left_out)
    counted = np.ones((len(labels), len(protocol.classes)), bool)
    for c, label in enumerate(protocol.classes):
        if label in protocol.left_out and is_left_out.sum() >= 2:
            counted[:, c] = is_left_out
    return counted


def _variants(outputs, synthetic: list[Synthetic], protocol: Protocol, config: EvaluateConfig) -> list[Variant]:
    """real only; per output: all, passed the gate, species-verified (if any), and the ratio sweep."""
    variants = [Variant(REAL_ONLY, None, None)]
    for i, (output, s) in enumerate(zip(outputs, synthetic)):
        passed = np.array(passed_mask(output.index), bool)
        verified = verified_mask(output)
        variants.append(Variant(f"{s.name}: all", i, np.ones(len(s.labels), bool)))
        variants.append(Variant(f"{s.name}: passed", i, passed))
        if verified is not None and any(verified):
            variants.append(Variant(f"{s.name}: verified", i, np.array(verified, bool)))
        for ratio in config.ratios:
            picked = ratio_pick(s.labels, passed, protocol.real_counts, ratio, config.seed)
            variants.append(Variant(f"{s.name}: passed {ratio:g}x real", i, picked))
    return variants


def _cross_validated_scores(
    variant: Variant, real: Windows, labels, keys, synthetic: list[Synthetic], protocol: Protocol, config
) -> np.ndarray:
    """[recordings, classes]: each recording scored by the probe of the fold that held it out."""
    scores = np.zeros((len(labels), len(protocol.classes)))
    for fold in protocol.folds:
        train_windows = np.isin(real.owner, fold.train)
        x, y = [real.embeddings[train_windows]], [labels[real.owner[train_windows]]]
        if variant.output is not None:
            s = synthetic[variant.output]
            clips = variant.clips & usable_clips(fold, keys, s.references)
            chosen = clips[s.windows.owner]
            x.append(s.windows.embeddings[chosen])
            y.append(s.labels[s.windows.owner[chosen]])
        test_windows = np.isin(real.owner, fold.test)
        probabilities = fit_predict(
            np.concatenate(x), np.concatenate(y), real.embeddings[test_windows], protocol.classes,
            config.probe_c, config.seed,
        )  # fmt: skip
        scores[fold.test] = per_recording(probabilities, real.owner[test_windows], fold.test)
    return scores


def _similarity(real: Windows, labels, groups, s: Synthetic, protocol: Protocol, config) -> dict:
    """Per class and pooled: Fréchet distance and separability AUC of real against this output's clips."""
    real_labels = labels[real.owner]
    synthetic_labels = s.labels[s.windows.owner]
    per_class = {}
    for c in protocol.classes:
        r, k = real_labels == c, synthetic_labels == c
        per_class[c] = {
            "real_windows": int(r.sum()),
            "synthetic_windows": int(k.sum()),
            "frechet": frechet_distance(real.embeddings[r], s.windows.embeddings[k]),
            "separability_auc": separability_auc(
                real.embeddings[r], groups[real.owner[r]], s.windows.embeddings[k], s.windows.owner[k], config.seed
            ),
        }
    pooled = separability_auc(real.embeddings, groups[real.owner], s.windows.embeddings, s.windows.owner, config.seed)
    return {"per_class": per_class, "separability_auc": pooled}


def _finite(value):
    """NaN and infinities as null: evaluation.json stays strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value
