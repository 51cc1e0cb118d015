"""Learning curves over seeds (report/curves.py): the band is mean ± t_{0.975,n-1} s / sqrt(n) of
the seeds at each evaluation point, one seed has a line and no band, the gaps to the reference
arm carry Welch's interval, and the figure says n in its legend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bashkir_peft.report import figures
from bashkir_peft.report.cost import CURVE_COLUMNS
from bashkir_peft.report.curves import curve_gaps, curve_summary, reference_arm


def _curves(arms: dict[tuple, np.ndarray], steps: dict[str, list[int]] | None = None,
            every: dict[str, float] | None = None) -> pd.DataFrame:
    """A curve table: arm (method label, rate[, cell label]) -> values of shape (seeds, points);
    an evaluation every 12 kB of text (or ``every[label]`` bytes), at the steps given per method
    label (default 7, 14, 20 ...)."""
    rows = []
    for (label, lr, *cell), values in arms.items():
        for seed, curve in enumerate(values):
            for k, bpb in enumerate(curve):
                step = (steps or {}).get(label, [7, 14, 20, 27, 34])[k]
                rows.append({"run_id": f"{label}-{lr}-{cell}-{seed}", "model": "m", "method_label": label,
                             "seed": seed, "learning_rate": lr, "step": step,
                             "train_bytes_seen": (every or {}).get(label, 12_000.0) * (k + 1),
                             "eval_loss": 1.0, "bits_per_byte": bpb, "label": cell[0] if cell else ""})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_band_is_the_t_interval_over_seeds():
    rng = np.random.default_rng(0)
    full = 2.5 - 0.1 * np.arange(5) + rng.normal(0, 0.05, size=(5, 5))  # 5 seeds x 5 points
    lora = 2.6 - 0.1 * np.arange(5) + rng.normal(0, 0.05, size=(3, 5))
    summary = curve_summary(_curves({("full", 2e-4): full, ("lora r=8", 5e-3): lora})).set_index(["arm", "point"])
    for arm, values in (("full", full), ("lora r=8", lora)):
        for k in range(5):
            x = values[:, k]
            low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
            row = summary.loc[(arm, k + 1)]
            assert row["n"] == len(x) and row["mean"] == pytest.approx(x.mean())
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
            assert row["train_bytes_seen"] == 12_000 * (k + 1)
    # the half-width is t_{0.975,4} s / sqrt(5), t_{0.975,4} = 2.776
    row = summary.loc[("full", 1)]
    assert row["ci_high"] - row["mean"] == pytest.approx(2.7764451 * full[:, 0].std(ddof=1) / np.sqrt(5))


def test_one_seed_has_no_band_and_the_points_follow_each_runs_evaluations():
    one = np.array([[2.4, 2.2, 2.1]])
    # the adapted tokenizer's run evaluates at steps 2, 4, 6: still points 1, 2, 3 at 12, 24, 36 kB
    summary = curve_summary(_curves({("lora r=8 tok=k8", 5e-3): one}, steps={"lora r=8 tok=k8": [2, 4, 6]}))
    assert summary["point"].tolist() == [1, 2, 3] and summary["step"].tolist() == [2, 4, 6]
    assert summary["mean"].tolist() == pytest.approx([2.4, 2.2, 2.1]) and (summary["n"] == 1).all()
    assert summary[["std", "ci_low", "ci_high"]].isna().all().all()


def test_several_rates_or_cells_of_one_method_are_separate_arms():
    curves = _curves({("full", 1e-4): np.full((2, 3), 2.5), ("full", 4e-4): np.full((2, 3), 2.3)})
    assert sorted(set(curve_summary(curves)["arm"])) == ["full lr=0.0001", "full lr=0.0004"]
    # LoRA on every linear layer and on attention only share a method label and a rate: the cell
    # label keeps them apart, never averaged together
    curves = _curves({("lora r=8", 5e-3, "lr5e-3"): np.full((2, 3), 2.5),
                      ("lora r=8", 5e-3, "attn-lr5e-3"): np.full((1, 3), 2.7)})
    summary = curve_summary(curves).set_index(["arm", "point"])
    assert summary.loc[("lora r=8 lr5e-3", 1), ["n", "mean"]].tolist() == [2, pytest.approx(2.5)]
    assert summary.loc[("lora r=8 attn-lr5e-3", 1), ["n", "mean"]].tolist() == [1, pytest.approx(2.7)]


def test_gaps_to_the_reference_carry_welchs_interval():
    rng = np.random.default_rng(1)
    full = 2.5 + rng.normal(0, 0.05, size=(5, 3))
    lora = 2.6 + rng.normal(0, 0.02, size=(3, 3))
    single = np.array([[2.4, 2.3, 2.2]])
    curves = _curves({("full", 2e-4): full, ("lora r=8", 5e-3): lora, ("lora r=64", 2e-3): single})
    assert reference_arm(curve_summary(curves)) == "full"  # the first in method order
    assert reference_arm(curve_summary(curves), "lora r=8") == "lora r=8"  # the design's B where it is an arm
    gaps = curve_gaps(curves, "full").set_index(["arm", "point"])
    for k in range(3):
        expected = stats.ttest_ind(lora[:, k], full[:, k], equal_var=False).confidence_interval(0.95)
        row = gaps.loc[("lora r=8", k + 1)]
        assert row["difference"] == pytest.approx(lora[:, k].mean() - full[:, k].mean())
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.low, expected.high))
        one = gaps.loc[("lora r=64", k + 1)]  # one seed: the gap, no interval
        assert one["difference"] == pytest.approx(single[0, k] - full[:, k].mean()) and np.isnan(one["ci_low"])
    assert (gaps["reference"] == "full").all() and len(gaps) == 6


def test_an_arm_of_another_budget_is_measured_from_the_reference_at_its_budget():
    rng = np.random.default_rng(2)
    full, lora = 2.5 + rng.normal(0, 0.05, size=(3, 3)), 2.6 + rng.normal(0, 0.05, size=(3, 3))
    full_long, lora_long = 2.0 + rng.normal(0, 0.05, size=(3, 5)), 2.1 + rng.normal(0, 0.05, size=(3, 5))
    steps_arm = 1.8 + rng.normal(0, 0.05, size=(1, 3))
    curves = _curves({("full", 2e-4): full, ("lora r=8", 5e-3): lora, ("full @long", 2e-4, "long"): full_long,
                      ("lora r=8 @long", 5e-3, "long"): lora_long,
                      ("lora r=8 tok=x @equal-steps", 5e-3, "equal-steps"): steps_arm},
                     every={"full @long": 36_000.0, "lora r=8 @long": 36_000.0,
                            "lora r=8 tok=x @equal-steps": 43_000.0})
    gaps = curve_gaps(curves, "full").set_index(["arm", "point"])
    for k in range(5):  # every point of the long budget from full @long's point at the same text
        row = gaps.loc[("lora r=8 @long", k + 1)]
        assert row["reference"] == "full @long" and row["train_bytes_seen"] == 36_000.0 * (k + 1)
        assert row["difference"] == pytest.approx(lora_long[:, k].mean() - full_long[:, k].mean())
    assert "full @long" not in gaps.index.get_level_values("arm")  # the reference of its own budget
    # at 43, 86, 129 kB against full's 12, 24, 36 kB: no point of comparison, so no gap
    assert "lora r=8 tok=x @equal-steps" not in gaps.index.get_level_values("arm")
    assert set(gaps.loc["lora r=8"]["reference"]) == {"full"} and len(gaps) == 3 + 5


def test_figure_legend_gives_the_seeds(tmp_path, monkeypatch):
    drawn = {}

    def keep(fig, path):
        drawn["legend"] = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
        drawn["bands"] = sum(len(ax.collections) for ax in fig.axes)
        return path

    monkeypatch.setattr(figures, "_save", keep)
    curves = _curves({("full", 2e-4): np.full((3, 3), 2.5) + np.arange(3)[:, None] * 0.01,
                      ("lora r=8", 5e-3): np.array([[2.6, 2.5, 2.4]])})
    figures.learning_curves(curve_summary(curves), curve_gaps(curves), tmp_path / "c.png")
    assert drawn["legend"] == ["full (n=3)", "lora r=8 (n=1)"]
    assert drawn["bands"] == 1  # the band of full only: one seed has none, nor its gap
    assert figures.learning_curves(curve_summary(curves.iloc[:0]), curve_gaps(curves.iloc[:0]), tmp_path / "n.png") \
        is None


def test_a_collapsed_arm_is_capped_off_the_axis_and_counted(tmp_path, monkeypatch):
    drawn = []

    def keep(fig, path):
        ax = fig.axes[0]
        drawn.append((ax.get_ylim()[1], [t.get_text() for t in ax.texts]))
        return path

    monkeypatch.setattr(figures, "_save", keep)
    healthy = {("full", 2e-4): np.array([[2.3, 2.1, 2.0], [2.35, 2.2, 2.1]]),
               ("lora r=8", 5e-3): np.array([[2.4, 2.2, 2.1], [2.45, 2.25, 2.15]])}
    curves = _curves({**healthy, ("lora r=8", 2e-2): np.array([[16.9, 3.7, 3.5]])})
    figures.learning_curves(curve_summary(curves), curve_gaps(curves), tmp_path / "c.png")
    means = curve_summary(curves)["mean"]
    q1, q3 = means.quantile(0.25), means.quantile(0.75)
    top = q3 + 3 * (q3 - q1)  # Tukey's far-out fence (7.55): only the spike of 16.9 lies above it
    assert drawn[0][0] == pytest.approx(top) and drawn[0][1] == [f"1 point(s) above {top:.2f}, off the axis"]
    figures.learning_curves(curve_summary(_curves(healthy)), curve_gaps(_curves(healthy)), tmp_path / "h.png")
    assert drawn[1][1] == [] and drawn[1][0] > 2.45  # nothing far out: every point shown


def test_labels_of_one_method_get_distinct_markers_and_shades():
    labels = ["full", "full @long", "lora r=8", "lora r=8 [attention]", "lora r=8 tok=bakprot", "lora r=64 [use_rslora]"]
    markers, palette = figures.method_markers(labels), figures.method_palette(labels)
    lora = [lab for lab in labels if lab.startswith("lora")]
    assert len({markers[lab] for lab in lora}) == len(lora) and markers["full"] != markers["full @long"]
    assert len({palette[lab] for lab in labels}) == len(labels)
