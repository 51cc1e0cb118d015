"""Generation rates bootstrapped over prompts shared by every seed, then seeds
(report/bootstrap.py ``prompt_rate_interval``), tested by coverage: synthetic seeds x prompts
where prompts differ (a hard prompt is hard for every seed) and seeds differ a little."""

from __future__ import annotations

import numpy as np
import pytest

from bashkir_peft.errors import DataError
from bashkir_peft.report.bootstrap import pooled_rate_interval, prompt_rate_interval

TRUE = 0.6
N_SEEDS, N_PROMPTS = 3, 30


def _rates(rng: np.random.Generator, prompt_sd: float, seed_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """(letters of Bashkir sentences, letters) per seed x prompt: each prompt's share is the
    true rate + a prompt effect shared by all seeds + a seed effect + noise; the shares average
    the true rate over the population of prompts and seeds."""
    letters = rng.integers(80, 160, size=(N_SEEDS, N_PROMPTS)).astype(float)
    share = (TRUE + rng.normal(0, prompt_sd, size=(1, N_PROMPTS)) + rng.normal(0, seed_sd, size=(N_SEEDS, 1))
             + rng.normal(0, 0.02, size=(N_SEEDS, N_PROMPTS)))
    return np.clip(share, 0, 1) * letters, letters


def test_shared_prompt_intervals_cover_the_true_rate_where_within_seed_ones_do_not():
    rng = np.random.default_rng(2026)
    n, covered, covered_within = 200, 0, 0
    for g in range(n):
        num, den = _rates(rng, prompt_sd=0.15, seed_sd=0.01)
        ci = prompt_rate_interval(num, den, n_resamples=400, seed=g)
        covered += ci.low <= TRUE <= ci.high
        old = pooled_rate_interval(list(num), list(den), n_resamples=400, seed=g)
        covered_within += old.low <= TRUE <= old.high
    assert covered / n >= 0.90
    assert covered_within / n < 0.8  # prompts resampled independently per seed: the prompt effect averaged away


def test_prompt_rate_interval_estimate_and_input_checks():
    num = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    ci = prompt_rate_interval(num, n_resamples=300, seed=1)
    assert ci.estimate == pytest.approx(4 / 6) and ci.n_items == 3 and ci.n_groups == 2
    assert 0 <= ci.low <= ci.estimate <= ci.high <= 1
    assert prompt_rate_interval(num, n_resamples=300, seed=1) == ci  # deterministic by its seed
    with pytest.raises(DataError, match="one shape"):
        prompt_rate_interval(num, np.ones((2, 2)))
    assert np.isnan(prompt_rate_interval(num * 0, num * 0).estimate)
