"""The report's ``spectrum`` table: the full runs' weight-change spectra summarised by model and
matrix type over layers and seeds (median, range, share of the full rank), beside the ranks of
the grid's LoRA cells; absent where no full run has a spectrum."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bashkir_peft.config.report import ReportParams
from bashkir_peft.records import WEIGHT_SPECTRUM_COLUMNS, RunFiles
from bashkir_peft.report.context import read_context
from bashkir_peft.report.registry import TABLES
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.spectrum import SPECTRUM_COLUMNS, spectrum_table
from report_synth import make_grid


def _spectrum(rank_90: dict[str, list[int]], stable: float) -> pd.DataFrame:
    """A weight_spectrum table: per matrix type, one row per layer with the given 90 % ranks."""
    shapes = {"attn.c_attn": (32, 96), "mlp.c_fc": (32, 128)}
    rows = [{"module": f"transformer.h.{layer}.{matrix}", "layer": layer, "matrix": matrix,
             "rows": shapes[matrix][0], "cols": shapes[matrix][1], "full_rank": 32, "frobenius_norm": 1.0,
             "relative_norm": 0.01 * (layer + 1), "spectral_norm": 0.5, "stable_rank": stable + layer,
             "rank_50": max(1, r // 2), "rank_90": r, "rank_99": min(32, r + 2)}
            for matrix, ranks in rank_90.items() for layer, r in enumerate(ranks)]
    return pd.DataFrame(rows, columns=list(WEIGHT_SPECTRUM_COLUMNS))


@pytest.fixture
def grid(tmp_path):
    runs = make_grid(tmp_path / "runs")
    _spectrum({"attn.c_attn": [10, 20], "mlp.c_fc": [30, 31]}, 2.0).to_parquet(
        runs / "run01-full" / RunFiles.WEIGHT_SPECTRUM)
    _spectrum({"attn.c_attn": [12, 4], "mlp.c_fc": [32, 29]}, 3.0).to_parquet(
        runs / "run02-full" / RunFiles.WEIGHT_SPECTRUM)
    return runs


def test_spectrum_summarises_layers_and_seeds_beside_the_lora_ranks(grid):
    table = spectrum_table(discover_runs(grid))
    assert list(table.columns) == SPECTRUM_COLUMNS
    assert list(table["matrix"]) == ["attn.c_attn", "mlp.c_fc"]  # the model's order
    assert set(table["method_label"]) == {"full"}
    attn = table.set_index("matrix").loc["attn.c_attn"]
    assert (attn["runs"], attn["matrices"], attn["shape"], attn["full_rank"]) == (2, 4, "32 x 96", 32)
    assert (attn["rank_90_median"], attn["rank_90_min"], attn["rank_90_max"]) == (11.0, 4, 20)  # of 10, 20, 12, 4
    assert attn["rank_90_share"] == pytest.approx(11 / 32)
    assert (attn["stable_rank_median"], attn["stable_rank_min"], attn["stable_rank_max"]) == (3.0, 2.0, 4.0)
    assert attn["relative_norm_median"] == pytest.approx(0.015)
    # the synthetic grid's adapter cells: LoRA r=8 (three seeds), QLoRA r=8 (failed), LoRA r=16 (running)
    assert set(table["lora_ranks_in_grid"]) == {"8, 16"}


def test_a_budget_arm_of_its_own_is_not_pooled_with_the_short_runs(grid):
    # run02 made an arm of its own (the study block's label_arms, e.g. the long budget)
    runs = [dataclasses.replace(r, arm="long") if r.run_id == "run02-full" else r for r in discover_runs(grid)]
    table = spectrum_table(runs).set_index(["method_label", "matrix"])
    assert list(table.index) == [("full", "attn.c_attn"), ("full", "mlp.c_fc"),
                                 ("full @long", "attn.c_attn"), ("full @long", "mlp.c_fc")]
    assert (table.loc[("full", "attn.c_attn"), "rank_90_median"], table.loc[("full @long", "attn.c_attn"),
                                                                             "rank_90_median"]) == (15.0, 8.0)
    assert (table["runs"] == 1).all() and (table["matrices"] == 2).all()


def test_the_spectrum_table_is_registered(grid, tmp_path):
    context = read_context(ReportParams(grid="synth", runs_dir=str(grid)), grid)
    built = next(t for t in TABLES if t.name == "spectrum").build(context)
    pd.testing.assert_frame_equal(built, spectrum_table(context.runs))


def test_no_spectrum_without_a_full_run_that_wrote_one(tmp_path):
    assert spectrum_table(discover_runs(make_grid(tmp_path / "runs"))) is None
