"""The learning-rate sweep over seeds (issue 29): per model, method label and rate the mean
final validation bits per byte over seeds with its SD; the lowest mean chosen per method label
(placement and LoRA variant included in the label); a choice at the edge of the rates tried
marked and said in words; the study's runs checked against the choice of their own label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.records import FinalEval, RunFiles, TrainRecord, read_record, write_record
from bashkir_peft.report.cost import SWEEP_COLUMNS, sweep_runs_table, sweep_table
from bashkir_peft.report.figures import learning_rate_sweep
from bashkir_peft.report.findings import _sweep_sentence
from bashkir_peft.report.runs import discover_runs
from report_synth import documents, write_run

ATTENTION = ["c_attn", "attn.c_proj"]  # tiny-gpt2 is a gpt2: its attention projections


def _runs_frame(rows):
    """A :func:`sweep_runs_table`-shaped frame of (method_label, learning_rate, seed, bits_per_byte)."""
    return pd.DataFrame([{"run_id": f"r{i}", "model": "m", "method_label": label, "learning_rate": lr, "seed": seed,
                          "steps": 20, "tokens_seen": 20_480, "train_bytes_seen": 36_000 + seed, "bits_per_byte": bpb}
                         for i, (label, lr, seed, bpb) in enumerate(rows)])


SWEEP = [("full", 1e-4, 1, 2.40), ("full", 1e-4, 2, 2.60), ("full", 2e-4, 1, 2.10), ("full", 2e-4, 2, 2.30),
         ("full", 4e-4, 1, 2.50), ("full", 4e-4, 2, 2.20),
         ("lora r=8", 2.5e-3, 1, 3.00), ("lora r=8", 5e-3, 1, 2.80), ("lora r=8", 1e-2, 1, 2.60),
         ("lora r=8 [attention]", 1e-2, 1, 2.90)]


def test_each_rate_is_the_mean_over_its_seeds_and_the_lowest_mean_is_chosen():
    s = sweep_table(_runs_frame(SWEEP))
    assert list(s.columns) == SWEEP_COLUMNS
    full = s[s["method_label"] == "full"].set_index("learning_rate")
    assert list(full["n_seeds"]) == [2, 2, 2]
    assert full["bits_per_byte"].to_dict() == pytest.approx({1e-4: 2.50, 2e-4: 2.20, 4e-4: 2.35})
    assert full.loc[2e-4, "bits_per_byte_sd"] == pytest.approx(math.sqrt(0.02))  # (2.1, 2.3): SD with ddof 1
    assert full.loc[1e-4, "train_bytes_seen"] == 36_002  # 36,001.5 rounded: the mean over the seeds
    # seed 1 alone would choose 2e-4 too, seed 2 alone 4e-4: the mean decides
    assert list(full[full["chosen"]].index) == [2e-4] and not full["at_edge"].any()
    lora = s[s["method_label"] == "lora r=8"]
    assert list(lora["learning_rate"]) == [2.5e-3, 5e-3, 1e-2] and lora["bits_per_byte_sd"].isna().all()
    assert list(lora[lora["chosen"]]["learning_rate"]) == [1e-2] and list(lora["at_edge"]) == [False, False, True]
    attention = s[s["method_label"] == "lora r=8 [attention]"].iloc[0]  # its own arm, not pooled with lora r=8
    assert attention["chosen"] and attention["at_edge"] and attention["n_seeds"] == 1
    assert sweep_table(_runs_frame([])).empty


def _sweep_run(root, run_id, method, lora_r, seed, lr, bpb, rng, **params):
    d = write_run(root, run_id, "tiny-gpt2", method, lora_r, seed, bpb, documents(rng, 4), rng, generate=False)
    t = read_record(d / RunFiles.TRAIN, TrainRecord)
    write_record(d / RunFiles.TRAIN, t.model_copy(update={
        "params": t.params.model_copy(update={"learning_rate": lr, **params}),
        "final_eval": FinalEval(eval_loss=1.0, perplexity=math.e, blocks=4, bits_per_byte=bpb)}))
    return d


def test_the_study_runs_are_checked_against_the_choice_of_their_own_label(tmp_path):
    rng = np.random.default_rng(0)
    sweep_dir, study_dir = tmp_path / "sweep", tmp_path / "study"
    for seed, shift in ((1, 0.0), (2, 0.1)):
        for lr, bpb in ((2.5e-3, 2.6), (5e-3, 2.4), (1e-2, 2.5)):
            _sweep_run(sweep_dir, f"all-{lr:g}-{seed}", "lora", 8, seed, lr, bpb + shift, rng)
    for lr, bpb in ((5e-3, 2.7), (1e-2, 2.55)):
        _sweep_run(sweep_dir, f"attn-{lr:g}", "lora", 8, 1, lr, bpb, rng, target_modules=ATTENTION)
    sweep_runs = sweep_runs_table(discover_runs(sweep_dir))
    assert list(sweep_runs["method_label"]) == ["lora r=8"] * 6 + ["lora r=8 [attention]"] * 2
    sweep = sweep_table(sweep_runs)
    # the study: all-linear LoRA at the sweep's choice (5e-3), attention-only at 5e-3 where the sweep chose 1e-2
    _sweep_run(study_dir, "study-all", "lora", 8, 42, 5e-3, 2.4, rng)
    _sweep_run(study_dir, "study-attn", "lora", 8, 42, 5e-3, 2.6, rng, target_modules=ATTENTION)
    text = _sweep_sentence(sweep, discover_runs(study_dir))
    assert ("lora r=8 0.005 (of 0.0025, 0.005, 0.01; validation 2.450 ± 0.071 SD bits per byte, mean of 2 seeds "
            "per rate; the study's runs use it)") in text
    assert ("lora r=8 [attention] 0.01 (of 0.005, 0.01; validation 2.550 bits per byte, mean of 1 seed per rate; "
            "**at the edge of the rates tried: the grid should extend one step above**; "
            "**the study's runs use 0.005 instead**)") in text


def test_the_figure_draws_every_seed_and_the_mean(tmp_path):
    runs = _runs_frame(SWEEP)
    path = learning_rate_sweep(sweep_table(runs), runs, tmp_path / "sweep.png")
    assert path is not None and path.stat().st_size > 0
    assert learning_rate_sweep(sweep_table(_runs_frame([])), _runs_frame([]), tmp_path / "none.png") is None
