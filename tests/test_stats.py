"""Statistics of the reports against their reference definitions (rliable, scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from agents.stats import iqm, mean, stratified_bootstrap


@pytest.mark.parametrize("runs", range(1, 14))
def test_iqm_is_scipy_trim_mean_of_a_quarter(runs):
    # rliable's aggregate_iqm is scipy.stats.trim_mean(scores, 0.25): floor(n / 4) cut per end
    scores = np.random.default_rng(runs).normal(size=(3, runs))
    np.testing.assert_allclose(iqm(scores), trim_mean(scores, 0.25, axis=-1))


def test_a_nan_score_makes_the_iqm_nan_as_it_makes_the_mean():
    # sorted last, a NaN would be cut as the largest score and the IQM would look finite
    scores = np.array([np.nan, 1.0, 2.0, 3.0, 4.0])
    assert np.isnan(mean(scores))
    assert np.isnan(iqm(scores))
    assert np.isnan(trim_mean(scores, 0.25))
    both = iqm(np.array([[1.0, 2.0, 3.0, np.nan], [1.0, 2.0, 3.0, 4.0]]))
    assert np.isnan(both[0]) and both[1] == pytest.approx(2.5)
    assert all(np.isnan(v) for v in stratified_bootstrap([scores], iqm, reps=50))
