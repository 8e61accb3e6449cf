"""`evaluate(config)`: real only against real + synthetic and against matched real baselines, on
held-out real recordings.

1. read the real recordings and the synthetic outputs
2. embed everything with BirdNET (cached, checksummed, under EVAL/cache/)
3. make the folds, check them for leaks, and find what each fold must withhold (by bytes, near-copies)
4. per band (full; and real low-passed to the synthetic's bandwidth with --match-bandwidth):
   train every variant's probe per fold and seed, score the held-out recordings, compare
5. per class: Fréchet distance and separability of real and synthetic embeddings
   (4b. the second model, a log-mel CNN from scratch, on the full band; unless --no-cnn)
6. write EVAL/evaluation.json and EVAL/index.html
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from birdgen_ray.evaluate import cnn
from birdgen_ray.evaluate.blocks import GAP_BLOCKS, block_protocol, blocks_of, needs_time_blocks, time_blocks
from birdgen_ray.evaluate.config import EvaluateConfig
from birdgen_ray.evaluate.embed import Windows, embed_real, embed_synthetic
from birdgen_ray.evaluate.findings import degenerate_flags, leakage_report
from birdgen_ray.evaluate.inputs import (
    passed_mask,
    read_real,
    read_synthetic,
    reference_hashes,
    references,
    verified_mask,
)
from birdgen_ray.evaluate.leakage import near_copies
from birdgen_ray.evaluate.melspec import mel_real, mel_synthetic
from birdgen_ray.evaluate.metrics import compare, count_bin
from birdgen_ray.evaluate.page import write_page
from birdgen_ray.evaluate.probe import COMPONENTS
from birdgen_ray.evaluate.protocol import Protocol, check_protocol, made_from, make_protocol
from birdgen_ray.evaluate.scoring import (
    better_baselines,
    bootstrap_config,
    make_design,
    probe_fit,
    real_fold_stats,
    variant_scores,
)
from birdgen_ray.evaluate.similarity import frechet_distance, separability_auc
from birdgen_ray.evaluate.variants import (
    AUGMENTED,
    OVERSAMPLED,
    REAL,
    SYNTHETIC,
    Synthetic,
    Variant,
)
from birdgen_ray.io.storage import write_file_atomic
from birdgen_ray.verify.birdnet import load_birdnet

REAL_ONLY = "real only"
RESULT_FILE = "evaluation.json"
CNN_NOTE = (
    "a model independent of BirdNET, trained from scratch on the same folds; it compares real only with the "
    "oversampled real baseline and each output's 'all' variant: the re-augmented baseline exists only in "
    "BirdNET's embedding space, so it has no CNN row; passed, verified and the dose-response sweep are left to "
    "the probe (a CNN fit per variant and seed costs seconds)"
)
CNN_OFF = {"enabled": False, "note": "turned off (--no-cnn)"}
PAGE_FILE = "index.html"
WEAKER_SPLIT = (
    "every class has one recording, so folds split each recording into time blocks with a block's gap between "
    "training and test: weaker than folds over recordings (same bird, site and background on both sides)"
)


@dataclass(frozen=True)
class Units:
    """What the folds split and score: the recordings, or (a set whose every class has one recording)
    time blocks of them."""

    labels: np.ndarray  # per unit
    groups: np.ndarray  # per unit: kept on one side of every fold
    clusters: np.ndarray  # per unit: the bootstrap's unit (all blocks of one recording are one cluster)
    owner: np.ndarray  # per real window: its unit
    names: list[str]  # per unit, for the leakage list
    of_recordings: Callable[[list[frozenset[int]]], list[frozenset[int]]]  # recording sets -> unit sets
    protocol: Protocol
    split: dict  # for evaluation.json


def _units(recordings, labels: np.ndarray, groups: np.ndarray, real: Windows, config: EvaluateConfig) -> Units:
    names = [r.name for r in recordings]
    if not needs_time_blocks(labels, groups):
        protocol = make_protocol(labels, groups, config.folds, config.seed)
        split = {"kind": "recordings", "note": "grouped, stratified folds over recordings"}
        return Units(labels, groups, groups, real.owner, names, lambda sets: sets, protocol, split)
    blocks = time_blocks(real.owner, labels, config.folds)
    block_names = [f"{names[r]} block {b}" for r, b in zip(blocks.recording.tolist(), blocks.position.tolist())]
    split = {
        "kind": "time blocks",
        "blocks": blocks.blocks,
        "gap_blocks": GAP_BLOCKS,
        "note": WEAKER_SPLIT,
    }
    return Units(
        labels=labels[blocks.recording],
        groups=np.array([f"block-{i}" for i in range(len(blocks.recording))]),
        clusters=groups[blocks.recording],
        owner=blocks.owner,
        names=block_names,
        of_recordings=lambda sets: blocks_of(blocks, sets),
        protocol=block_protocol(blocks, labels),
        split=split,
    )


def _synthetic(output, real: Windows, units: Units, hashes, recordings, config, model) -> Synthetic:
    """One output's clips, embedded, with what each was made from and what it near-copies (as units)."""
    names = [frozenset({r.name, r.path, r.name.rsplit("/", 1)[-1]}) for r in recordings]
    bandwidth = output.index["bandwidth_hz"].to_numpy(zero_copy_only=False) if output.index.num_rows else []
    windows = embed_synthetic(output, config.out, model, config.batch_size, config.progress)
    near = near_copies(windows.embeddings, windows.owner, real.embeddings, units.owner, real.rms)
    near_of: list[set[int]] = [set() for _ in range(output.index.num_rows)]
    for clip, unit in near:
        near_of[clip].add(unit)
    sources = made_from(hashes, names, reference_hashes(output.index), references(output.index))
    return Synthetic(
        name=output.name,
        labels=np.array(output.index["label"].to_pylist()),
        clip_ids=output.index["clip_id"].to_pylist(),
        made_from=units.of_recordings(sources),
        near_copy_of=[frozenset(n) for n in near_of],
        windows=windows,
        bandwidth_hz=float(np.nanmin(bandwidth)) if len(bandwidth) else None,
        near_cosines=near,
    )


def evaluate(config: EvaluateConfig) -> dict:
    # 1. inputs, all read before EVAL/ is made: a wrong path leaves no empty folder behind
    recordings = read_real(config.real)
    labels = np.array([r.label for r in recordings])
    groups = np.array([r.group for r in recordings])
    outputs = read_synthetic(list(config.synthetic), set(labels.tolist()), config.storage_options)
    config.out.mkdir(parents=True, exist_ok=True)

    # 2. embeddings; the units the folds split (recordings, or time blocks of one-recording sets)
    model = load_birdnet(config.num_threads)
    real, hashes = embed_real(recordings, config.out, model, None, config.batch_size, config.progress)
    units = _units(recordings, labels, groups, real, config)
    real = Windows(real.embeddings, units.owner, real.rms)
    synthetic = [_synthetic(o, real, units, hashes, recordings, config, model) for o in outputs]

    # 3. folds, checked on the full-band embeddings; what each fold withholds
    protocol = units.protocol
    checks = check_protocol(protocol, units.labels, units.groups, real.owner, real.embeddings, real.rms)
    leakage = leakage_report(protocol, synthetic, units.names)
    variants = _variants(outputs, synthetic, config)

    # 4. + 5. per band
    bands = {"full": real}
    cutoffs = [s.bandwidth_hz for s in synthetic if s.bandwidth_hz]
    if config.match_bandwidth and cutoffs:
        cutoff = min(cutoffs)
        low = embed_real(recordings, config.out, model, cutoff, config.batch_size, config.progress)[0]
        bands[f"matched ({cutoff / 1000:g} kHz)"] = Windows(low.embeddings, units.owner, low.rms)
    class_bins = [count_bin(protocol.real_counts[c]) for c in protocol.classes]
    results = {band: _band(w, units, synthetic, variants, class_bins, config) for band, w in bands.items()}
    second = _cnn(recordings, outputs, synthetic, units, variants, class_bins, config) if config.cnn else CNN_OFF

    # 6. write
    result = _document(config, recordings, units, real, outputs, synthetic, model, checks, variants, class_bins)
    result.update(leakage=leakage, bands=results, cnn=second)
    write_file_atomic(config.out / RESULT_FILE, json.dumps(_finite(result), indent=2).encode())
    write_page(result, config.out / PAGE_FILE)
    return result


def _document(config, recordings, units: Units, real: Windows, outputs, synthetic, model, checks, variants, class_bins):
    """evaluation.json's inputs, classes and protocol (the results are added by the caller)."""
    protocol = units.protocol
    return {
        "real": {
            "source": str(config.real),
            "recordings": len(recordings),
            "units": len(units.labels),
            "windows": int(len(real.owner)),
        },
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
            "split": units.split,
            "seed": config.seed,
            "seeds": config.seeds,
            "bootstrap": config.bootstrap,
            "bootstrap_unit": "group",
            "threshold": config.threshold,
            "padding_rows": config.padding_rows,
            "probe": "shrinkage LDA (OAS), equal class priors, on the fold's top real principal components",
            "probe_components": COMPONENTS,
            "augmentation_space": "embedding",
            "variants": [v.name for v in variants],
        },  # fmt: skip
        "flags": degenerate_flags(units.protocol, units.labels, synthetic),
    }


def _band(real: Windows, units: Units, synthetic: list[Synthetic], variants, class_bins, config) -> dict:
    """Every variant's scores on this band's real windows, compared; and the similarity measures."""
    labels, protocol = units.labels, units.protocol
    design, bootstrap = make_design(labels, units.clusters, protocol, class_bins), bootstrap_config(config)
    probe = probe_fit(real, [real_fold_stats(fold, real, labels, protocol) for fold in protocol.folds])
    scores = {v.name: variant_scores(v, real, labels, synthetic, protocol, probe, config) for v in variants}
    against = better_baselines(design, scores, variants, synthetic, bootstrap)
    return {
        "variants": compare(design, scores, REAL_ONLY, bootstrap, against),
        "against_baseline": against,
        "similarity": {s.name: _similarity(real, labels, units.groups, s, protocol, config) for s in synthetic},
    }


def _cnn(recordings, outputs, synthetic: list[Synthetic], units: Units, variants, class_bins, config) -> dict:
    """The log-mel CNN on the same folds: real only, oversampled real, and each output's `all` (re-augmented
    real exists only in BirdNET's embedding space; the other synthetic variants are left to the probe)."""
    spectra = mel_real(recordings)
    if len(spectra) != len(units.owner):
        raise ValueError(f"{len(spectra)} log-mel windows but {len(units.owner)} BirdNET windows of the real set")
    real = Windows(spectra, units.owner, np.ones(len(spectra), np.float32))
    clips = [replace(s, windows=mel_synthetic(o)) for s, o in zip(synthetic, outputs)]
    chosen = [v for v in variants if v.kind in (REAL, OVERSAMPLED) or v.name.endswith(": all")]
    protocol, window_labels = units.protocol, units.labels[units.owner]

    def fit(k, x_added, y_added, test, seed):
        train = np.isin(real.owner, protocol.folds[k].train)
        x = np.concatenate([spectra[train], x_added])
        return cnn.fit_predict(
            x, np.concatenate([window_labels[train], y_added]), spectra[test], protocol.classes, seed
        )

    scores = {v.name: variant_scores(v, real, units.labels, clips, protocol, fit, config, seeded=True) for v in chosen}
    design, bootstrap = make_design(units.labels, units.clusters, protocol, class_bins), bootstrap_config(config)
    against = better_baselines(design, scores, chosen, synthetic, bootstrap)
    return {
        "enabled": True,
        "model": cnn.DESCRIPTION,
        "device": str(cnn.device()),
        "note": CNN_NOTE,
        "variants": compare(design, scores, REAL_ONLY, bootstrap, against),
        "against_baseline": against,
    }


def _variants(outputs, synthetic: list[Synthetic], config: EvaluateConfig) -> list[Variant]:
    """real only; per output: the two matched real baselines, all, passed the gate, species-verified
    (if any), and the dose-response sweep in windows."""
    variants = [Variant(REAL_ONLY)]
    for i, (output, s) in enumerate(zip(outputs, synthetic)):
        passed = np.array(passed_mask(output.index), bool)
        verified = verified_mask(output)
        variants.append(Variant(f"{s.name}: oversampled real (matched)", OVERSAMPLED, i))
        variants.append(Variant(f"{s.name}: re-augmented real (matched)", AUGMENTED, i))
        variants.append(Variant(f"{s.name}: all", SYNTHETIC, i, np.ones(len(s.labels), bool)))
        variants.append(Variant(f"{s.name}: passed", SYNTHETIC, i, passed))
        if verified is not None and any(verified):
            variants.append(Variant(f"{s.name}: verified", SYNTHETIC, i, np.array(verified, bool)))
        for ratio in config.ratios:
            variants.append(Variant(f"{s.name}: passed {ratio:g}x real windows", SYNTHETIC, i, passed, ratio))
    return variants


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
