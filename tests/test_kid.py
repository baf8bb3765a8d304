"""KID (evaluation/kid.py): torch-fidelity's numbers on tiny feature sets, ~0 for sets of one distribution, growing
with a shift, and compute_gen_fid.py's KID rows beside its FID rows."""
import json

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import kid_features_to_metric

import compute_gen_fid
from evaluation import kid
from evaluation.fid import reference_features_path, reference_statistics_path
from evaluation.result_rows import parse_number
from tests.scripts import run_script


def _features(n, d=16, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, size=(n, d))


@pytest.mark.parametrize("n_1,n_2,subsets,size", [(40, 60, 7, 20), (30, 30, 5, 30), (50, 25, 3, 10)])
@pytest.mark.parametrize("whole_sets", [True, False])
def test_values_are_torch_fidelitys(n_1, n_2, subsets, size, whole_sets):
    features_1, features_2 = _features(n_1, seed=1), _features(n_2, shift=0.3, seed=2)
    expected = kid_features_to_metric(torch.from_numpy(features_1), torch.from_numpy(features_2), kid_subsets=subsets,
                                      kid_subset_size=size, kid_degree=3, kid_gamma=None, kid_coef0=1,
                                      rng_seed=kid.KID_SEED, verbose=False)
    ours = kid.kernel_inception_distance(features_1, features_2, subsets, size, whole_sets=whole_sets)
    assert ours.mean == pytest.approx(expected["kernel_inception_distance_mean"], rel=1e-10, abs=1e-14)
    assert ours.std == pytest.approx(expected["kernel_inception_distance_std"], rel=1e-10, abs=1e-14)
    assert (ours.subsets, ours.subset_size) == (subsets, size)


def test_unbiased_mmd_against_brute_force_pairs():
    x, y = _features(6, d=4, seed=3), _features(6, d=4, shift=1.0, seed=4)
    k = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / 30
    cross = sum(k(x[i], y[j]) for i in range(6) for j in range(6)) / 36
    value = kid.mmd2_unbiased(kid.polynomial_kernel(x, x), kid.polynomial_kernel(x, y), kid.polynomial_kernel(y, y))
    assert value == pytest.approx(within - 2 * cross, rel=1e-12)


def test_one_distribution_gives_zero_within_its_std_and_a_shift_grows_it():
    reference = _features(400, d=32, seed=5)
    same = kid.kernel_inception_distance(_features(400, d=32, seed=6), reference, subsets=50, subset_size=200)
    assert abs(same.mean) < same.std and same.std > 0
    # (one set against itself is not a test of this: its subsets share points, whose k(x, x) enters the cross
    # term only, so the estimate is negative by far more than its std; the estimator assumes independent sets)
    shifted = [kid.kernel_inception_distance(_features(400, d=32, shift=shift, seed=6), reference, subsets=50,
                                             subset_size=200) for shift in (0.25, 0.5, 1.0)]
    means = [same.mean] + [value.mean for value in shifted]
    assert means == sorted(means) and shifted[0].mean > 3 * shifted[0].std
    # the expectation does not depend on the sample count: subsets of 50 and of 200 agree within their stds
    small = kid.kernel_inception_distance(_features(400, d=32, shift=0.5, seed=6), reference, subsets=50,
                                          subset_size=50)
    assert abs(small.mean - shifted[1].mean) < small.std


def test_subset_size_is_capped_by_the_smaller_set_and_the_text_parses():
    value = kid.kernel_inception_distance(_features(30), _features(80, seed=1), subsets=3)
    assert value.subset_size == 15 and value.std > 0  # by default half the smaller set: the subsets differ
    assert kid.subset_size_for(5000, 2000) == 1000 and kid.subset_size_for(500, 2000, wanted=1000) == 500
    mean, std = parse_number(value.text(), "kid")
    assert mean == pytest.approx(value.mean, rel=1e-3) and std == pytest.approx(value.std, rel=0.05)
    with pytest.raises(Exception, match="at least 2"):
        kid.kernel_inception_distance(_features(1), _features(5))


def test_compute_gen_fid_writes_kid_beside_fid_and_caches_the_reference_features(tmp_path):
    summary = tmp_path / "fid_tiny.json"
    args = ["dataset:mnist:test", "noise:uniform", "--dataset", "mnist", "--split", "train", "--n_samples", "8",
            "--dims", "64", "--batch_size", "8", "--device", "cpu", "--cache_dir", str(tmp_path), "--kid_subsets",
            "5", "--summary", str(summary), "--method", "test", "noise"]
    run_script("compute_gen_fid.py", *args)
    rows = json.loads(summary.read_text())["rows"]
    assert [(row["method"], row["metric"].split(" ")[0]) for row in rows] == [
        ("test", "FID"), ("noise", "FID"), ("test", "KID"), ("noise", "KID")]
    assert rows[2]["metric"] == "KID (64-d Inception, 5 subsets of 4) vs mnist train (8 images)"
    (test_kid, test_std), (noise_kid, _) = (parse_number(row["ours"], "kid") for row in rows[2:])
    assert noise_kid > test_kid + 3 * test_std
    cache = reference_features_path(reference_statistics_path(tmp_path, "mnist", "train", 8, 64))
    assert cache.is_file() and np.load(cache).shape == (8, 64)
    compute_gen_fid.main([*args, "--no-kid"])  # from the caches (in this process: faster), FID alone
    assert json.loads(summary.read_text())["rows"] == rows[:2]
