import numpy as np
import pytest
from scipy import stats

from onefeed.evaluation.significance import paired_bootstrap, paired_ttest


def test_ttest_matches_scipy_and_edge_cases():
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    assert paired_ttest(a, b) == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_ttest(a, a) == 1.0
    with pytest.raises(ValueError, match="same length"):
        paired_ttest(a, b[:3])


def test_bootstrap_detects_a_clear_difference_and_not_noise():
    rng = np.random.default_rng(1)
    base = rng.random(400)
    better = base + 0.2
    assert paired_bootstrap(better, base, n_boot=500) < 0.01
    noise = base + rng.normal(0, 0.01, 400)
    assert paired_bootstrap(noise, base, n_boot=500) > 0.05
    assert paired_bootstrap(base, base, n_boot=100) == 1.0
