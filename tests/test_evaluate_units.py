"""`birdgen_ray.evaluate`: the metrics, the protocol's folds and leak checks, and the similarity measures,
on small arrays whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from birdgen_ray.evaluate.metrics import BootstrapConfig, compare, count_bin, per_class, summarise
from birdgen_ray.evaluate.protocol import (
    Fold,
    Protocol,
    ProtocolError,
    check_protocol,
    make_protocol,
    ratio_pick,
    usable_clips,
)
from birdgen_ray.evaluate.similarity import frechet_distance, separability_auc


def one_hot(labels, n_classes):
    return np.eye(n_classes)[labels]


def test_count_bins_have_the_issue_edges():
    assert [count_bin(n) for n in (1, 2, 5, 6, 10, 11, 50, 51, 900)] == [
        "1", "2-5", "2-5", "6-10", "6-10", "11-50", "11-50", ">50", ">50"
    ]  # fmt: skip
    with pytest.raises(ValueError):
        count_bin(0)


def test_auc_skips_classes_without_positives_and_padding_tempers_cmap():
    truth = one_hot([0, 0, 1, 1, 0, 1], 3)  # class 2 has no positive
    perfect = truth * 0.9 + 0.05
    values = per_class(truth, perfect)
    assert values["roc_auc"][:2].tolist() == [1.0, 1.0] and np.isnan(values["roc_auc"][2])
    assert values["f1"][:2].tolist() == [1.0, 1.0] and np.isnan(values["f1"][2])
    assert summarise(values, ["2-5", "2-5", "1"])["macro"]["roc_auc"] == 1.0
    # one positive ranked last: plain AP would be 1/6; the 5 padding rows lift it, but it stays < perfect
    truth = one_hot([1, 0, 0, 0, 0, 0], 2)  # class 1: one positive, scored below every negative
    worst = 1.0 - truth
    cmap = per_class(truth, worst)["cmap"][1]
    assert 1 / 6 < cmap < per_class(truth, truth.astype(float))["cmap"][1] == 1.0


def test_bootstrap_difference_is_zero_for_a_copy_and_positive_for_a_better_probe():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 60)
    truth = one_hot(labels, 4)
    noisy = rng.random((60, 4))
    better = 0.6 * truth + 0.4 * noisy
    result = compare(
        truth, {"base": noisy, "copy": noisy.copy(), "better": better}, "base", ["1", "2-5", "6-10", "11-50"],
        BootstrapConfig(resamples=60, seed=0),
    )  # fmt: skip
    copy, gain = result["copy"]["macro"]["roc_auc"], result["better"]["macro"]["roc_auc"]
    assert copy["difference"] == 0 and copy["difference_ci"] == [0.0, 0.0]
    assert gain["difference"] > 0 and gain["difference_ci"][0] > 0
    low, high = result["base"]["macro"]["roc_auc"]["ci"]
    assert low < result["base"]["macro"]["roc_auc"]["value"] < high
    assert "difference" not in result["base"]["macro"]["roc_auc"]


def test_folds_are_grouped_stratified_and_leave_singletons_out_of_training():
    labels = np.array(["a"] * 6 + ["b"] * 4 + ["c"] * 2 + ["solo1", "solo2"])
    groups = np.array([f"g{i // 2}" for i in range(6)] + [f"r{i}" for i in range(8)])  # class a: 3 groups of 2
    protocol = make_protocol(labels, groups, max_folds=5, seed=0)
    assert protocol.left_out == ["solo1", "solo2"] and len(protocol.folds) == 5
    tested = np.concatenate([f.test for f in protocol.folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))  # each recording tested exactly once
    for fold in protocol.folds:
        assert not set(groups[fold.train]) & set(groups[fold.test])
        assert not {"solo1", "solo2"} & set(labels[fold.train])
    windows = np.repeat(np.arange(len(labels)), 2)
    embeddings = np.random.default_rng(0).standard_normal((len(windows), 16))
    report = check_protocol(protocol, labels, groups, windows, embeddings, np.ones(len(windows)))
    assert report["every_recording_tested_once"] and report["duplicate_window_pairs"] == 0


def test_protocol_check_fails_when_a_group_or_the_same_audio_is_on_both_sides():
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    groups = np.array(["x", "x", "y", "z", "w", "v"])
    windows = np.arange(6)
    rms = np.ones(6)
    embeddings = np.random.default_rng(0).standard_normal((6, 16))

    def two_folds(train):
        test = np.setdiff1d(np.arange(6), train)
        return Protocol([Fold(np.array(train), test), Fold(test, np.array(train))], ["a", "b"], {"a": 3, "b": 3}, [])

    leaky = two_folds([0, 3, 4])
    with pytest.raises(ProtocolError, match="group 'x'"):
        check_protocol(leaky, labels, groups, windows, embeddings, rms)
    # recording 4 (train) holds a copy of recording 5's (test) audio, under its own group
    copied = embeddings.copy()
    copied[4] = copied[5] * 1.0001
    fold = two_folds([0, 1, 3, 4])
    check_protocol(fold, labels, groups, windows, embeddings, rms)
    with pytest.raises(ProtocolError, match="recordings 4 and 5 share audio"):
        check_protocol(fold, labels, groups, windows, copied, rms)
    # ...unless the shared window is silence, which every quiet recording has
    check_protocol(fold, labels, groups, windows, copied, np.where(np.arange(6) >= 4, 0.0, 1.0))


def test_synthetic_clips_made_from_a_test_recording_are_dropped_from_its_fold():
    fold = Fold(np.array([0]), np.array([1]))
    keys = [frozenset({"a.ogg", "sha-a"}), frozenset({"b.ogg", "sha-b"})]
    assert usable_clips(fold, keys, ["a.ogg", "b.ogg", None, "sha-b", "other"]).tolist() == [
        True, False, True, False, True
    ]  # fmt: skip


def test_ratio_sweep_takes_ceil_ratio_times_real_count_nested():
    labels = np.array(["a"] * 20 + ["b"] * 20)
    eligible = np.ones(40, bool)
    eligible[:3] = False
    picks = {r: ratio_pick(labels, eligible, {"a": 3, "b": 1}, r, seed=0) for r in (0.5, 1, 2, 4)}
    assert [int(picks[r][:20].sum()) for r in (0.5, 1, 2, 4)] == [2, 3, 6, 12]
    assert [int(picks[r][20:].sum()) for r in (0.5, 1, 2, 4)] == [1, 1, 2, 4]
    assert not picks[4][:3].any()
    assert (picks[0.5] <= picks[1]).all() and (picks[1] <= picks[2]).all() and (picks[2] <= picks[4]).all()


def test_frechet_distance_matches_the_matrix_square_root_formula():
    rng = np.random.default_rng(0)
    real, synthetic = rng.standard_normal((40, 6)), rng.standard_normal((30, 6)) * 1.5 + 0.7
    s_r, s_s = np.cov(real, rowvar=False), np.cov(synthetic, rowvar=False)
    expected = ((real.mean(0) - synthetic.mean(0)) ** 2).sum() + np.trace(
        s_r + s_s - 2 * scipy.linalg.sqrtm(s_r @ s_s).real
    )
    assert frechet_distance(real, synthetic) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(real[:1], synthetic) is None


def test_separability_is_chance_for_one_distribution_and_high_for_two():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 3)
    same = separability_auc(rng.standard_normal((60, 8)), groups, rng.standard_normal((60, 8)), groups)
    apart = separability_auc(rng.standard_normal((60, 8)), groups, rng.standard_normal((60, 8)) + 1.5, groups)
    assert 0.3 < same < 0.7 and apart > 0.95
    assert separability_auc(np.zeros((3, 8)), np.zeros(3), np.ones((3, 8)), np.arange(3)) is None


def test_metrics_equal_scikit_learn_with_ties_and_rare_classes():
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        n, k = int(rng.integers(4, 40)), 3
        truth = one_hot(rng.integers(0, k, n), k)
        scores = np.round(rng.random((n, k)), 1)  # rounded: many ties
        values = per_class(truth, scores, threshold=0.5, padding=5)
        for c in range(k):
            y, p = truth[:, c], scores[:, c]
            padded_y, padded_p = np.r_[y, np.ones(5)], np.r_[p, np.ones(5)]
            assert values["cmap"][c] == pytest.approx(average_precision_score(padded_y, padded_p), abs=1e-12)
            if 0 < y.sum() < n:
                assert values["roc_auc"][c] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
            if y.sum():
                assert values["f1"][c] == pytest.approx(f1_score(y, p >= 0.5, zero_division=0.0), abs=1e-12)


def test_verified_clips_follow_the_reports_species_rule(tmp_path):
    """The 'verified' variant takes clips whose own-species confidence reaches the run's threshold."""
    import json

    import pyarrow as pa

    from birdgen_ray.evaluate.inputs import SyntheticOutput, verified_mask

    settings = json.dumps({"quality": {"min_species_confidence": 0.6}})
    index = pa.table(
        {
            "clip_id": ["a", "b", "c", "d"],
            "label": ["x", "x", "y", "z"],
            "settings": [settings] * 4,
            "species_confidence": pa.array([0.9, 0.59, float("nan"), 0.6], pa.float32()),
            "species_top1": ["X_x", "W_w", "Y_y", "Z_z"],
            "species_top1_confidence": pa.array([0.9, 0.8, 0.7, 0.6], pa.float32()),
            "verifier": ["birdnet-2.4-fp32"] * 4,
        }
    )
    output = SyntheticOutput(name="out", uri=str(tmp_path), index=index)
    assert verified_mask(output) == [True, False, False, True]  # NaN: unverifiable, never passes
    unverified = SyntheticOutput(name="out", uri=str(tmp_path), index=index.drop_columns(["verifier"]))
    assert verified_mask(unverified) is None


def test_every_command_but_evaluate_runs_without_the_evaluate_extra(tmp_path):
    """scikit-learn and scipy are the evaluate extra: the CLI loads without them, and evaluate says so."""
    from tests.without_packages import cli_without

    missing = {"sklearn", "scipy"}
    helped = cli_without(missing, ["--help"])
    assert helped.returncode == 0 and "evaluate" in helped.stdout, helped.stderr
    planned = cli_without(
        missing, ["plan", "examples/train_metadata.csv", "--target", "3", "-o", str(tmp_path / "p.parquet")]
    )
    assert planned.returncode == 0, planned.stderr
    args = ["evaluate", "--real", str(tmp_path), "--synthetic", str(tmp_path), "--out", str(tmp_path / "eval")]
    evaluated = cli_without(missing, args)
    assert evaluated.returncode == 2 and "install birdgen-ray[evaluate]" in evaluated.stderr, evaluated.stderr
    assert "Traceback" not in evaluated.stderr
