"""Multiplicity: the primary comparison keeps its verdict; every other row is exploratory with
a Holm-adjusted p-value within its family, and the findings say so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bashkir_peft.report.multiplicity import family_of, holm, t_p_value


def test_holm_step_down():
    # Holm 1979: sorted p (0.01, 0.02, 0.03, 0.5) x (4, 3, 2, 1) = (0.04, 0.06, 0.06, 0.5), then monotone
    assert holm([0.03, 0.01, 0.5, 0.02]).tolist() == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.4, 0.9]).tolist() == pytest.approx([0.8, 0.9])
    assert holm([0.2]).tolist() == [0.2]  # a family of one: unadjusted
    out = holm([np.nan, 0.01, 0.02])  # a row without a p-value does not count
    assert math.isnan(out[0]) and out[1:].tolist() == pytest.approx([0.02, 0.02])


def test_p_value_agrees_with_the_interval():
    from scipy.stats import t

    half = t.ppf(0.975, 7) * 0.1  # a 95 % interval of half-width half around the difference
    assert t_p_value(half, 0.1, 7) == pytest.approx(0.05)  # an end of the interval touches 0
    assert t_p_value(0.0, 0.1, 7) == pytest.approx(1.0)
    assert math.isnan(t_p_value(0.1, float("nan"), 7))


def test_families():
    assert family_of("primary") == "primary"
    assert {family_of(r) for r in ("secondary", "secondary (test split)", "primary (test split)", "pair")} == \
        {"secondary"}
    assert family_of("forgetting") == family_of("transfer") == "forgetting"


def test_findings_keep_the_primary_verdict_and_label_the_rest(tmp_path):
    from bashkir_peft.config.design import StudyDesign
    from bashkir_peft.report.comparisons import comparisons_table
    from bashkir_peft.report.findings import _comparison_sentences
    from bashkir_peft.report.runs import discover_runs
    from report_synth import make_grid

    runs = discover_runs(make_grid(tmp_path / "runs"))
    design = StudyDesign(primary={"a": "lora r=8", "b": "base", "question": "Does LoRA help?"},
                         secondary=[{"a": "base", "b": "lora r=8", "question": "q2"},  # the same test twice:
                                    {"a": "lora r=8", "b": "base", "question": "q3"},  # Holm doubles its p
                                    {"a": "lora r=8", "b": "full", "question": "q4"}], budget="b")  # no interval
    comp = comparisons_table(runs, design, protocol="rolling", n_resamples=300)
    primary = comp[comp["role"] == "primary"].iloc[0]
    assert primary["family"] == "primary" and primary["p_holm"] == primary["p_value"]  # alone in its family
    sec = comp[comp["family"] == "secondary"]
    assert sec["p_holm"].tolist() == pytest.approx(holm(sec["p_value"].to_numpy(float)).tolist(), nan_ok=True)
    twice = sec[sec["question"].isin(["q2", "q3"])]
    assert twice["p_value"].tolist() == pytest.approx([primary["p_value"]] * 2)
    assert twice["p_holm"].tolist() == pytest.approx([min(1.0, 2 * primary["p_value"])] * 2)
    text = _comparison_sentences(comp, 0.95)
    first = next(s for s in text if s.startswith("**Primary.**"))
    assert "exploratory" not in first and "the interval excludes 0" in first
    others = [s for s in text if s.startswith(("**Secondary", "**Primary (test split)"))]
    assert others and all("(exploratory" in s for s in others)
    assert any("Holm-adjusted p " in s and "within the secondary family" in s for s in others)
