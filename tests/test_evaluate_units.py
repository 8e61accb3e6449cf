"""`birdgen_ray.evaluate`: the metrics, the protocol's folds and leak checks, and the similarity measures,
on small arrays whose right answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from birdgen_ray.evaluate.metrics import BootstrapConfig, Design, compare, count_bin, per_class, summarise
from birdgen_ray.evaluate.protocol import (
    Fold,
    Protocol,
    ProtocolError,
    check_protocol,
    made_from,
    make_protocol,
    withheld,
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


def _design(labels, k, groups=None):
    truth = one_hot(labels, k)
    groups = np.arange(len(labels)) if groups is None else groups
    return Design(truth, np.asarray(groups), ["1", "2-5", "6-10", "11-50"][:k], np.zeros(k, bool))


def test_bootstrap_difference_is_zero_for_a_copy_and_positive_for_a_better_probe():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 60)
    design = _design(labels, 4)
    noisy = rng.random((1, 60, 4))
    better = 0.6 * design.truth + 0.4 * noisy
    result = compare(design, {"base": noisy, "copy": noisy.copy(), "better": better}, "base",
                     BootstrapConfig(resamples=60, seed=0))  # fmt: skip
    copy, gain = result["copy"]["macro"]["roc_auc"], result["better"]["macro"]["roc_auc"]
    assert copy["difference"] == 0 and copy["difference_ci"] == [0.0, 0.0] and copy["verdict"] == "no clear difference"
    assert gain["difference"] > 0 and gain["difference_ci"][0] > 0 and gain["verdict"] == "gain"
    low, high = result["base"]["macro"]["roc_auc"]["ci"]
    assert low < result["base"]["macro"]["roc_auc"]["value"] < high
    assert "difference" not in result["base"]["macro"]["roc_auc"]


def test_seed_variance_widens_the_interval_and_a_difference_within_it_is_no_gain():
    """Three seeds of one probe, one better by luck: averaged, the gain is small and its interval,
    which holds the spread between seeds, spans 0."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 90)
    design = _design(labels, 3)
    signal = 0.3 * design.truth + 0.7 * rng.random((90, 3))
    base = np.stack([signal, signal, signal])
    lucky = np.stack([signal + 0.5 * design.truth, 0.1 * signal, signal * rng.random((90, 3))])
    config = BootstrapConfig(resamples=200, seed=0)
    one_seed = compare(design, {"base": base[:1], "lucky": lucky[:1]}, "base", config)["lucky"]["macro"]["roc_auc"]
    three = compare(design, {"base": base, "lucky": lucky}, "base", config)["lucky"]["macro"]["roc_auc"]
    assert one_seed["verdict"] == "gain"
    assert three["verdict"] != "gain" and three["difference_ci"][0] < 0 < three["difference_ci"][1]
    width = lambda cell: cell["ci"][1] - cell["ci"][0]  # noqa: E731
    assert width(three) > width(one_seed)


def test_the_bootstrap_resamples_groups_not_recordings():
    """Ten groups of six copies: resampling recordings would see 60 independent units and a narrow
    interval; resampling groups sees 10, and the interval is wider."""
    rng = np.random.default_rng(4)
    labels = np.repeat(rng.integers(0, 2, 10), 6)
    groups = np.repeat(np.arange(10), 6)
    scores = np.repeat(rng.random((10, 2)), 6, axis=0)[None]
    config = BootstrapConfig(resamples=300, seed=0)
    by_group = compare(_design(labels, 2, groups), {"x": scores}, "x", config)["x"]["macro"]["roc_auc"]["ci"]
    by_recording = compare(_design(labels, 2), {"x": scores}, "x", config)["x"]["macro"]["roc_auc"]["ci"]
    assert by_group[1] - by_group[0] > 1.5 * (by_recording[1] - by_recording[0])


def test_left_out_classes_have_their_own_row():
    labels = np.array([0, 0, 1, 1, 2, 3])
    design = Design(one_hot(labels, 4), np.arange(6), ["2-5", "2-5", "1", "1"], np.array([False, False, True, False]))
    scores = one_hot(labels, 4)[None] * 0.8 + 0.1
    result = compare(design, {"x": scores}, "x", BootstrapConfig(resamples=0))["x"]
    assert result["left_out"]["roc_auc"]["value"] == 1.0 and set(result["bins"]) >= {"1", "2-5"}


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


def test_clips_are_matched_to_recordings_by_bytes_not_path_text():
    """The hash decides; path text counts only for a clip without a hash (an older output)."""
    sources = made_from(
        ["sha-a", "sha-b", "sha-a"],  # recording 2 is a copy of 0 under another path
        [frozenset({"a.ogg"}), frozenset({"b.ogg"}), frozenset({"copy/a.ogg"})],
        ["sha-a", "sha-b", None, None, "sha-b", "sha-x"],
        ["elsewhere/a.ogg", "b.ogg", "b.ogg", None, "a.ogg", "b.ogg"],
    )
    assert sources == [frozenset({0, 2}), frozenset({1}), frozenset({1}), frozenset(), frozenset({1}), frozenset()]
    fold = Fold(np.array([0, 2]), np.array([1]))
    assert withheld(fold, sources).tolist() == [False, True, True, False, True, False]


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


@pytest.mark.slow  # CLI subprocesses
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


def test_the_duplicate_search_is_exact_for_short_copies_the_hashing_table_missed():
    """Pairs at cosine >= 0.995 found block by block equal a brute-force search, across block edges."""
    from birdgen_ray.evaluate.leakage import close_pairs, duplicate_recording_pairs, unit_rows

    rng = np.random.default_rng(5)
    x = rng.standard_normal((700, 32)).astype(np.float32)
    copies = rng.choice(700, 60, replace=False)
    x[copies[:30]] = x[copies[30:]] + 0.005 * rng.standard_normal((30, 32)).astype(np.float32)
    unit = unit_rows(x)
    expected = {(int(i), int(j)) for i, j in np.argwhere(np.triu(unit @ unit.T, 1) >= 0.995)}
    found = {(int(i), int(j)) for a, b, _ in close_pairs(x, x, same=True, block=97) for i, j in zip(a, b)}
    assert found == expected and len(found) >= 25
    owners = np.arange(700)
    pairs = duplicate_recording_pairs(owners, x, np.ones(700))
    assert pairs == expected


def test_near_copies_find_each_synthetic_clip_copying_a_real_window():
    from birdgen_ray.evaluate.leakage import near_copies

    rng = np.random.default_rng(6)
    real = rng.standard_normal((50, 16))
    real_owner = np.repeat(np.arange(10), 5)
    clips = rng.standard_normal((12, 16))
    clips[3] = real[17] * 1.01  # clip 1 (windows 2-3) holds a copy of recording 3's window
    found = near_copies(clips, np.repeat(np.arange(6), 2), real, real_owner, np.ones(50))
    assert list(found) == [(1, 3)] and found[(1, 3)] > 0.999
    assert near_copies(clips, np.repeat(np.arange(6), 2), real, real_owner, np.zeros(50)) == {}  # silence


def test_a_damaged_cache_file_is_recomputed_with_one_warning(tmp_path, capsys):
    from birdgen_ray.evaluate.embed import _load, _save, _table

    table = _table(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32), np.ones(4), "m")
    path = tmp_path / "c.parquet"
    _save(path, table)
    assert _load(path, "m").equals(table) and capsys.readouterr().err == ""
    data = bytearray(path.read_bytes())
    flipped = False
    for at in range(4, len(data) - 8):  # flip one bit inside a page until the file still reads
        data[at] ^= 0x10
        path.write_bytes(bytes(data))
        try:
            import pyarrow.parquet as pq

            if not pq.read_table(path).equals(table):
                flipped = True
                break
        except Exception:
            pass
        data[at] ^= 0x10
    assert flipped
    assert _load(path, "m") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checksum" in err[0] and str(path) in err[0]
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    assert _load(path, "m") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0]


def _synthetic_fixture():
    from birdgen_ray.evaluate.embed import Windows
    from birdgen_ray.evaluate.variants import FoldData, Synthetic

    rng = np.random.default_rng(7)
    labels = np.array(["a"] * 4 + ["b"] * 4 + ["solo"])  # recordings
    real_owner = np.repeat(np.arange(9), 3)  # 3 windows each
    real = Windows(rng.standard_normal((27, 8)).astype(np.float32), real_owner, np.ones(27, np.float32))
    clip_labels = np.array(["a"] * 6 + ["solo"] * 4)  # 10 clips of 2 windows; none of b
    clip_owner = np.repeat(np.arange(10), 2)
    made = [frozenset({0})] + [frozenset()] * 9  # clip 0 was made from recording 0
    near = [frozenset()] * 6 + [frozenset({8})] + [frozenset()] * 3  # clip 6 copies the solo recording
    clip_windows = Windows(rng.standard_normal((20, 8)).astype(np.float32), clip_owner, np.ones(20))
    s = Synthetic("out", clip_labels, [f"c{i}" for i in range(10)], made, near, clip_windows, 8000.0)
    fold = Fold(np.array([1, 2, 3, 5, 6, 7]), np.array([0, 4, 8]))
    return FoldData(fold, real, labels, [s]), s


def test_baselines_add_the_synthetic_sets_rows_per_class_from_training_windows_only():
    from birdgen_ray.evaluate.variants import AUGMENTED, OVERSAMPLED, SYNTHETIC, Variant, added_rows, unmatched_rows

    data, s = _synthetic_fixture()
    x, y = added_rows(Variant("all", SYNTHETIC, 0, np.ones(10, bool)), data, seed=0)
    assert sorted(y.tolist()) == ["a"] * 10 + ["solo"] * 6  # clip 0 (reference) and clip 6 (near-copy) withheld
    train_rows = data.real.embeddings[np.isin(data.real.owner, data.fold.train)]
    over_x, over_y = added_rows(Variant("over", OVERSAMPLED, 0), data, seed=0)
    assert over_y.tolist() == ["a"] * 10  # solo has no real training window: nothing to repeat
    assert all((row == train_rows).all(1).any() for row in over_x)  # repeats of the fold's training windows
    assert unmatched_rows(data, {"a": 10, "solo": 6}) == 6
    aug_x, aug_y = added_rows(Variant("aug", AUGMENTED, 0), data, seed=0)
    again, _ = added_rows(Variant("aug", AUGMENTED, 0), data, seed=0)
    other, _ = added_rows(Variant("aug", AUGMENTED, 0), data, seed=1)
    assert aug_y.tolist() == over_y.tolist() and np.array_equal(aug_x, again) and not np.array_equal(aug_x, other)
    assert not any((row == train_rows).all(1).any() for row in aug_x)  # new rows, not copies
    tested = data.real.embeddings[np.isin(data.real.owner, data.fold.test)]
    nearest = np.abs(aug_x[:, None, :] - tested[None]).sum(2).min(1)
    assert (nearest > 0).all()


def test_dose_response_counts_synthetic_windows_against_real_training_windows():
    from birdgen_ray.evaluate.variants import SYNTHETIC, Variant, added_rows

    data, _ = _synthetic_fixture()
    # class a: 3 training recordings x 3 windows = 9 real windows; usable clips: 5 of 2 windows each
    # solo (left out): its 3 real windows; usable clips: 3 of 2 windows
    for ratio, a_windows, solo_windows in ((0.5, 6, 2), (1.0, 10, 4), (2.0, 10, 6)):
        _, y = added_rows(Variant("r", SYNTHETIC, 0, np.ones(10, bool), ratio), data, seed=0)
        assert (y == "a").sum() == a_windows and (y == "solo").sum() == solo_windows, ratio


def test_degenerate_baselines_are_flagged():
    from birdgen_ray.evaluate.findings import degenerate_flags

    data, s = _synthetic_fixture()
    one_class = Protocol([Fold(np.array([0, 1]), np.array([4, 5, 8]))], ["a", "b", "solo"], {}, ["solo"])
    flags = degenerate_flags(one_class, data.labels, [s])
    assert any("fold 0: real only trained 1 class (a)" in f for f in flags)
    assert any("out: no synthetic clips of b" in f for f in flags)
    two = Protocol([data.fold], ["a", "b", "solo"], {}, ["solo"])
    assert not any("fold" in f for f in degenerate_flags(two, data.labels, [s]))


def test_the_probe_is_equal_prior_lda_with_scikit_learns_oas_covariance_and_its_statistics_add():
    from sklearn.covariance import oas

    from birdgen_ray.evaluate.probe import fit_predict, predict, real_fold

    rng = np.random.default_rng(8)
    centres = rng.standard_normal((4, 12)) * 1.5
    y = np.array(["a"] * 40 + ["b"] * 12 + ["c"] * 5 + ["d"] * 3)
    x = centres[np.searchsorted(["a", "b", "c", "d"], y)] + rng.standard_normal((60, 12))
    test = rng.standard_normal((20, 12)) + centres[rng.integers(0, 4, 20)]
    classes = ["a", "b", "c", "d", "never"]
    ours = fit_predict(x, y, test, classes, real_rows=45)  # basis from the first 45 rows, all 60 train
    fold = real_fold(x[:45], y[:45], classes)
    z, index = fold.project(x), np.searchsorted(classes, y)
    means = np.array([z[index == k].mean(0) for k in range(4)])
    covariance = oas(z - means[index], assume_centered=True)[0]
    coefficients = np.linalg.solve(covariance, means.T)
    logits = fold.project(test) @ coefficients - 0.5 * (means * coefficients.T).sum(1)  # equal priors
    expected = np.exp(logits - logits.max(1, keepdims=True))
    assert np.abs(ours[:, :4] - expected / expected.sum(1, keepdims=True)).max() < 1e-4
    assert (ours[:, 4] == 0).all()  # a class without training windows
    added = predict(fold, fold.real + fold.stats(x[45:], y[45:]), test)  # rows added to shared statistics
    assert np.abs(added - ours).max() < 1e-6
    assert (ours.argmax(1) == np.linalg.norm(test[:, None] - centres[None], axis=2).argmin(1)).mean() > 0.8
    one = fit_predict(x[:40], y[:40], test, classes)
    assert (one[:, 0] == 1).all() and (one[:, 1:] == 0).all()


def test_time_blocks_test_each_block_once_with_a_block_between_train_and_test():
    from birdgen_ray.evaluate.blocks import block_protocol, needs_time_blocks, time_blocks

    labels = np.array(["a", "b"])
    assert needs_time_blocks(labels, np.array(["x", "y"]))
    assert not needs_time_blocks(np.array(["a", "a", "b"]), np.array(["x", "z", "y"]))
    window_recording = np.repeat([0, 1], [10, 7])
    split = time_blocks(window_recording, labels, max_folds=5)
    assert split.blocks == 5 and len(split.recording) == 10
    protocol = block_protocol(split, labels)
    tested = np.concatenate([f.test for f in protocol.folds])
    assert sorted(tested.tolist()) == list(range(10)) and protocol.left_out == []
    for fold in protocol.folds:
        for t in fold.test:
            same = fold.train[split.recording[fold.train] == split.recording[t]]
            assert len(same) and (np.abs(split.position[same] - split.position[t]) >= 2).all()
    with pytest.raises(ProtocolError, match="needs >= 4"):
        time_blocks(np.repeat([0, 1], [10, 3]), labels, max_folds=5)
