"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"), from the features FID uses.

KID is the squared MMD between two sets of Inception pool features under the cubic polynomial kernel
k(x, y) = (x . y / d + 1)^3, estimated without bias (the U-statistic of the within-set terms), averaged over random
subsets of equal size; the std over the subsets is reported with it. Unlike FID its estimate does not depend on the
sample count in expectation, so quick scores at 500 or 2,000 samples compare across models (FID's bias at those
counts depends on the model: Chong & Forsyth 2020).

The estimator and its defaults are torch-fidelity's (`torch_fidelity.metric_kid`, itself Binkowski's code): 100
subsets of 1,000, subsets drawn by numpy's RandomState(2020), the first set's subset before the second's, std with
ddof 0; on equal features and subset size the two give the same numbers (tested). One difference: with fewer than
2,000 samples the default subset size is half the smaller set (torch-fidelity refuses, and a subset as large as the
set repeats it, std 0), so 500 samples give subsets of 250. Here it runs on the features compute_gen_fid.py
already extracts for FID (one pass of the same offline Inception weights), and the kernel matrices are computed once
for all subsets when that is cheaper than per subset.
"""
from dataclasses import dataclass

import numpy as np

from training import ConfigError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's rng_seed
# Kernel matrices held at once on the whole-set path (float64 entries: 4e7 is 320 MB)
_MAX_GRAM_ENTRIES = 40_000_000


@dataclass(frozen=True)
class KID:
    mean: float
    std: float  # over the subsets (ddof 0, as torch-fidelity and Binkowski et al.)
    subsets: int
    subset_size: int

    def text(self) -> str:
        """'mean ± std' for a summary row (evaluation.result_rows.parse_number reads it back)."""
        return f"{self.mean:.4g} ± {self.std:.2g}"


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree=3, gamma=None, coef0=1.0) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 of two sets of m points from their kernel matrices: the within-set means leave out the
    diagonal (m (m - 1) pairs), the cross-set mean takes all m^2 pairs."""
    m = k_xx.shape[0]
    if k_xx.shape != (m, m) or k_xy.shape != (m, m) or k_yy.shape != (m, m):
        raise ValueError(f"kernel matrices of one subset size expected, got {k_xx.shape}, {k_xy.shape}, {k_yy.shape}")
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def subset_size_for(n_1: int, n_2: int, wanted=None) -> int:
    """The subset size used: `wanted` capped by the smaller set; by default KID_SUBSET_SIZE capped by half the smaller
    set, so that the subsets differ and their std says how much the estimate varies (subsets of a whole set of
    1,000 would all be that set: std 0)."""
    size = min(wanted, n_1, n_2) if wanted is not None else min(KID_SUBSET_SIZE, min(n_1, n_2) // 2)
    if size < 2:
        raise ConfigError(f"KID needs subsets of at least 2 samples; the sets hold {n_1} and {n_2}")
    return size


def kernel_inception_distance(features_1: np.ndarray, features_2: np.ndarray, subsets=KID_SUBSETS,
                              subset_size=None, seed=KID_SEED, whole_sets=None) -> KID:
    """KID of two feature sets [n_1, d] and [n_2, d]: mean and std over `subsets` pairs of subsets of
    `subset_size` (subset_size_for: by default 1000, at most half the smaller set), drawn without replacement as
    torch-fidelity draws them.

    whole_sets: compute the three kernel matrices of the whole sets once and index them per subset (True), or the
    kernel of each subset pair (False); None picks the cheaper within a memory bound. Both give the same numbers."""
    features_1, features_2 = np.asarray(features_1, dtype=np.float64), np.asarray(features_2, dtype=np.float64)
    if features_1.ndim != 2 or features_2.ndim != 2 or features_1.shape[1] != features_2.shape[1]:
        raise ConfigError(f"KID needs two feature sets [n, d] of one d, got {features_1.shape} and {features_2.shape}")
    if subsets < 1:
        raise ConfigError(f"KID needs at least one subset, got {subsets}")
    (n_1, _), (n_2, _) = features_1.shape, features_2.shape
    size = subset_size_for(n_1, n_2, subset_size)
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(n_1, size, replace=False), rng.choice(n_2, size, replace=False)) for _ in range(subsets)]
    whole_entries = n_1 * n_1 + n_2 * n_2 + n_1 * n_2
    if whole_sets is None:
        whole_sets = whole_entries <= min(3 * subsets * size * size, _MAX_GRAM_ENTRIES)
    if whole_sets:
        k_11 = polynomial_kernel(features_1, features_1)
        k_22 = polynomial_kernel(features_2, features_2)
        k_12 = polynomial_kernel(features_1, features_2)
        mmds = [mmd2_unbiased(k_11[np.ix_(i, i)], k_12[np.ix_(i, j)], k_22[np.ix_(j, j)]) for i, j in draws]
    else:
        mmds = [mmd2_unbiased(polynomial_kernel(features_1[i], features_1[i]),
                              polynomial_kernel(features_1[i], features_2[j]),
                              polynomial_kernel(features_2[j], features_2[j])) for i, j in draws]
    return KID(float(np.mean(mmds)), float(np.std(mmds)), subsets, size)
