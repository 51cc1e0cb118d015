"""Cells of different ``label`` (an equal-steps budget beside the equal-bytes arm of the same
tokenizer, issue 32) are separate arms in the differences and the comparisons, never pooled as
seeds of one; cells of one label keep their method label."""

from __future__ import annotations

import numpy as np

from bashkir_peft.records import CellRecord, RunFiles, read_record, write_record
from bashkir_peft.report.comparisons import comparisons_table
from bashkir_peft.report.lm import arm_labels, differences_table
from bashkir_peft.report.runs import read_run
from report_synth import documents, write_run


def _relabel(run_dir, **axes):
    cell = read_record(run_dir / RunFiles.CELL, CellRecord)
    write_record(run_dir / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(update=axes)}))


def test_an_equal_steps_cell_is_its_own_arm(tmp_path):
    rng = np.random.default_rng(0)
    docs = documents(rng)
    base = write_run(tmp_path, "b", "tiny-gpt2", "base", None, None, 3.0, docs, rng, generate=False)
    bytes_arm = [write_run(tmp_path, f"k{s}", "tiny-gpt2", "lora", 8, s, 2.5, docs, rng, generate=False)
                 for s in (42, 123)]
    steps = write_run(tmp_path, "steps", "tiny-gpt2", "lora", 8, 42, 2.0, docs, rng, generate=False)
    for d in bytes_arm:
        _relabel(d, tokenizer="k8")
    _relabel(steps, tokenizer="k8", label="equal-steps")
    runs = [read_run(d) for d in (base, *bytes_arm, steps)]
    assert {r.method_label for r in runs[1:]} == {"lora r=8 tok=k8"}  # the method label alone would pool them
    assert arm_labels(runs) == {"b": "base", "k42": "lora r=8 tok=k8", "k123": "lora r=8 tok=k8",
                                "steps": "lora r=8 tok=k8 [equal-steps]"}
    diffs = differences_table(runs, protocol="rolling", n_resamples=200).set_index(["method_a", "method_b"])
    pooled = diffs.loc[("lora r=8 tok=k8", "base")]
    alone = diffs.loc[("lora r=8 tok=k8 [equal-steps]", "base")]
    assert (pooled["n_seeds_a"], alone["n_seeds_a"]) == (2, 1)
    assert alone["bpb_a"] < pooled["bpb_a"] - 0.3  # 2.0 against 2.5 bits per byte: not a mean of the three
    between = diffs.loc[("lora r=8 tok=k8 [equal-steps]", "lora r=8 tok=k8")]
    assert between["difference"] < 0
    table = comparisons_table(runs, None, protocol="rolling", n_resamples=200)
    assert {"lora r=8 tok=k8", "lora r=8 tok=k8 [equal-steps]"} <= set(table["a"])
    # every cell of the method under one label: no bracket, its method label
    _relabel(steps, label=None)
    _relabel(bytes_arm[0], label="equal-steps")
    _relabel(bytes_arm[1], label="equal-steps")
    _relabel(steps, label="equal-steps")
    assert set(arm_labels([read_run(d) for d in (base, *bytes_arm, steps)]).values()) == {"base", "lora r=8 tok=k8"}
