"""Intervals for differences between methods (report/bootstrap.py), tested by coverage.

Synthetic 3-seed grids with a known true difference in bits per byte: the 95 % intervals
must cover the truth in at least 90 % of 200 grids both where the seeds are what varies
(large seed spread, no document effect: a document-only bootstrap would be far too narrow)
and where the documents are (no seed spread, a large per-document effect), without being
uselessly wide.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bashkir_peft.errors import DataError
from bashkir_peft.report.bootstrap import MIN_SEEDS, hierarchical_bpb_difference, seed_level_problem

TRUE = -0.2  # bpb(A) - bpb(B)
N_DOCS = 30


def _grid(rng: np.random.Generator, seed_sd: float, doc_sd: float, n_seeds: int = 3):
    """NLL (nats) of A and B, (n_seeds, N_DOCS) each, and the documents' bytes: per run and
    document, bpb = method mean + shared document difficulty + the method's own document
    effect (sd ``doc_sd``) + the run's seed effect (sd ``seed_sd``)."""
    w = rng.integers(200, 3000, size=N_DOCS).astype(float)
    hard = rng.normal(0, 0.5, size=N_DOCS)

    def method(mu: float) -> np.ndarray:
        bpb = mu + hard + rng.normal(0, doc_sd, size=N_DOCS) + rng.normal(0, seed_sd, size=(n_seeds, 1))
        return math.log(2) * w * bpb

    return method(2.0 + TRUE), method(2.0), w


@pytest.mark.parametrize("seed_sd, doc_sd", [(0.1, 0.0), (0.0, 0.3)], ids=["seed-spread", "document-effect"])
def test_intervals_cover_the_true_difference_in_200_grids(seed_sd, doc_sd):
    rng = np.random.default_rng(2026)
    n_grids, covered, half_widths = 200, 0, []
    for g in range(n_grids):
        a, b, w = _grid(rng, seed_sd, doc_sd)
        ci = hierarchical_bpb_difference(a, b, w, n_resamples=400, seed=g)
        covered += ci.low <= TRUE <= ci.high
        half_widths.append((ci.high - ci.low) / 2)
    assert covered / n_grids >= 0.90
    # not covering by being huge: the mean half-width stays within 2.5 x the normal-theory
    # half-width with the true standard deviation of the estimate
    true_sd = math.sqrt(2 * seed_sd**2 / 3) if seed_sd else None
    if true_sd:
        assert np.mean(half_widths) < 2.5 * 1.96 * true_sd


def test_a_document_only_bootstrap_would_miss_the_seed_spread():
    # the reason for the seed level: with seeds varying and no document effect, resampling
    # documents alone gives intervals that almost never cover the truth
    rng = np.random.default_rng(5)
    covered = 0
    for g in range(50):
        a, b, w = _grid(rng, 0.1, 0.0)
        avg = hierarchical_bpb_difference(a.mean(axis=0), b.mean(axis=0), w, seeded_a=False, seeded_b=False,
                                          n_resamples=200, seed=g)
        covered += avg.low <= TRUE <= avg.high
    assert covered / 50 < 0.5


def test_estimate_determinism_and_input_checks():
    rng = np.random.default_rng(0)
    a, b, w = _grid(rng, 0.05, 0.1)
    one, two = (hierarchical_bpb_difference(a, b, w, n_resamples=300, seed=3) for _ in range(2))
    assert one == two
    assert one.low < one.estimate < one.high
    assert one.estimate == pytest.approx((a.mean(axis=0) - b.mean(axis=0)).sum() / (math.log(2) * w.sum()))
    assert (one.n_documents, one.n_seeds_a, one.n_seeds_b) == (N_DOCS, 3, 3)
    assert hierarchical_bpb_difference(a, b, w, n_resamples=300, seed=4) != one
    with pytest.raises(DataError, match="one document count"):
        hierarchical_bpb_difference(a, b[:, :-1], w)
    with pytest.raises(DataError, match="no documents"):
        hierarchical_bpb_difference(a[:, :0], b[:, :0], w[:0])
    with pytest.raises(DataError, match="2 seeds; the seed level needs at least 3"):
        hierarchical_bpb_difference(a[:2], b, w)
    with pytest.raises(DataError, match="seed-free system B has 3 rows"):
        hierarchical_bpb_difference(a, b, w, seeded_b=False)


def test_seed_free_base_and_the_degenerate_seed_level():
    rng = np.random.default_rng(1)
    a, b, w = _grid(rng, 0.1, 0.1)
    ci = hierarchical_bpb_difference(a, b[:1], w, seeded_b=False, n_resamples=300)
    assert ci.n_seeds_b == 1 and 1 < ci.dof < 30  # the seed level of A still limits the degrees of freedom
    assert seed_level_problem(1, False, "base") is None
    assert seed_level_problem(MIN_SEEDS, True, "lora r=8") is None
    assert seed_level_problem(2, True, "full") == "full: 2 seeds; the seed level needs at least 3, so no interval"
