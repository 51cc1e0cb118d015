"""The report's downstream and parity tables: every finished run's classifiers with their
intervals, the baselines once (they do not depend on the model), runs without the stage left
out; the parity premium from the data folder's tokenizer table."""

from __future__ import annotations

import pandas as pd
import pytest

from bashkir_peft.config.report import ReportParams
from bashkir_peft.records import DataFiles, RunFiles, write_record
from bashkir_peft.report.build import build_report
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.views import format_downstream
from report_synth import downstream_result, make_grid, stage_downstream_record


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = make_grid(tmp_path_factory.mktemp("grid") / "runs", failed=False)
    runs = [r for r in discover_runs(root) if r.status == "finished"]
    with_stage = runs[:-1]  # the last finished run has no downstream record
    for i, run in enumerate(with_stage):
        results = [downstream_result("majority", "most frequent train category", 0.25, 0.057),
                   downstream_result("char_tfidf", "char 1-4-gram TF-IDF + logistic regression", 0.6, 0.55),
                   downstream_result("in_context", "0-shot, acc", 0.30 + i / 100, 0.2, k=0, score="acc"),
                   downstream_result("probe", "layer 2 (fixed)", 0.50 + i / 100, 0.45, layer=2, selection="fixed")]
        write_record(run.path / RunFiles.DOWNSTREAM,
                     stage_downstream_record(run.model, str(run.path), run.method, results))
    fert = pd.DataFrame({"model": ["tiny-gpt2"], "tokenizer": ["gpt2"], "split": ["test"], "fertility": [4.1],
                         "tokens_bak": [600], "tokens_eng": [100], "premium": [6.0]})
    fert.to_parquet(root / "data" / DataFiles.FERTILITY)
    return root, with_stage, runs[-1]


def test_downstream_table_lists_each_run_once_and_the_baselines_once(grid):
    root, with_stage, without = grid
    result = build_report(ReportParams(grid="synth", runs_dir=str(root), n_resamples=200,
                                       data_dir=str(root / "data")))
    table = result.tables["downstream"]
    assert list(table["method_label"][:2]) == ["baseline", "baseline"]
    assert list(table["approach"][:2]) == ["majority", "char_tfidf"]
    runs = table.iloc[2:]
    assert len(runs) == 2 * len(with_stage)
    keys = set(zip(runs["model"], runs["method_label"], [None if pd.isna(s) else int(s) for s in runs["seed"]]))
    assert keys == {(r.model, r.method_label, r.seed) for r in with_stage}
    assert (without.model, without.method_label, without.seed) not in keys
    probe = runs[runs["approach"] == "probe"]
    assert sorted(probe["accuracy"]) == pytest.approx([0.50 + i / 100 for i in range(len(with_stage))])
    shown = format_downstream(table)
    assert shown.loc[0, "accuracy"] == "0.250 [0.200, 0.300]"
    assert (root / "report" / "tables" / "downstream.csv").is_file()
    parity = result.tables["parity"]
    assert parity.to_dict("records") == [{"model": "tiny-gpt2", "tokenizer": "gpt2", "fertility": 4.1,
                                          "premium": 6.0, "tokens_bak": 600, "tokens_eng": 100}]


def test_the_findings_read_zero_shot_accuracy_by_the_results_typed_fields(tmp_path):
    from bashkir_peft.report.findings import findings

    root = make_grid(tmp_path / "runs", failed=False)
    zero_shot = {"base": 0.3, "full": 0.5, "lora r=8": 0.7}
    for run in (r for r in discover_runs(root) if r.status == "finished"):
        acc = zero_shot[run.method_label]
        # a 5-shot and an acc_norm result beside the zero-shot acc one: neither is zero-shot accuracy
        results = [downstream_result("char_tfidf", "char 1-4-gram TF-IDF + logistic regression", 0.6, 0.55),
                   downstream_result("in_context", "0-shot, acc", acc, 0.2, k=0, score="acc"),
                   downstream_result("in_context", "0-shot, acc_norm", 0.1, 0.1, k=0, score="acc_norm"),
                   downstream_result("in_context", "5-shot, acc", 0.9, 0.8, k=5, score="acc")]
        write_record(run.path / RunFiles.DOWNSTREAM, stage_downstream_record(run.model, str(run.path), run.method,
                                                                             results))
    result = build_report(ReportParams(grid="synth", runs_dir=str(root), n_resamples=100))
    [sentence] = [s for s in findings(result, None) if s.startswith("**Topic classification")]
    assert "mean over seeds: base 30%, full 50%, lora r=8 70%; a character TF-IDF classifier 60%." in sentence
    assert sentence.endswith("On 204 test sentences.")
