"""Statistics of the reports against their reference definitions (rliable, scipy)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import trim_mean

from agents.stats import iqm, mean, performance_profile, stratified_bootstrap


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


# 10 runs of 5 tasks; references from rliable 1.2.0 (get_interval_estimates, method
# "percentile", 200000 resamples) on the matrix [runs, tasks]
RUNS_BY_TASK = np.array(
    [
        [4.738, 6.526, 12.959, 16.852, 18.441],
        [6.975, 13.697, 9.599, 14.726, 21.83],
        [8.751, 8.885, 9.703, 15.412, 25.591],
        [5.266, 5.603, 10.127, 13.081, 21.076],
        [3.445, 12.431, 13.245, 27.872, 22.249],
        [2.73, 7.481, 10.948, 19.335, 25.136],
        [3.56, 9.151, 13.18, 13.103, 17.266],
        [2.399, 12.35, 15.451, 15.432, 21.202],
        [5.032, 14.485, 11.772, 18.195, 23.716],
        [1.469, 9.068, 14.134, 16.818, 21.72],
    ]
)


@pytest.mark.parametrize(
    ("statistic", "reference"),
    [
        (iqm, (12.793307692307694, 11.936614423076922, 13.640654807692309)),  # aggregate_iqm
        (mean, (13.08426, 12.335379000000001, 13.889242999999997)),  # aggregate_mean
    ],
)
def test_stratified_bootstrap_matches_rliable(statistic, reference):
    point, low, high = stratified_bootstrap(list(RUNS_BY_TASK.T), statistic, reps=20000)
    assert point == pytest.approx(reference[0], rel=1e-12)  # the same values, summed in order
    # percentile intervals of independent resamplings: equal within bootstrap noise
    width = reference[2] - reference[1]
    assert abs(low - reference[1]) < 0.03 * width
    assert abs(high - reference[2]) < 0.03 * width


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reps": 0}, r"reps: must be >= 1, got 0"),
        ({"confidence": 95}, r"confidence: must be in \(0, 1\), got 95"),
        ({"confidence": 0.0}, r"confidence: must be in \(0, 1\), got 0.0"),
        ({"confidence": 1.0}, r"confidence: must be in \(0, 1\), got 1.0"),
    ],
)
def test_resampling_refuses_bad_settings_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        stratified_bootstrap([np.arange(4.0)], mean, **kwargs)
    with pytest.raises(ValueError, match=message):
        performance_profile([np.arange(4.0)], np.array([1.0]), **kwargs)


@pytest.mark.parametrize("runs", [[], [np.arange(3.0), np.array([])]])
def test_performance_profile_refuses_a_run_without_episodes(runs):
    with pytest.raises(ValueError, match="needs at least one run, each with an episode"):
        performance_profile(runs, np.array([1.0]))
