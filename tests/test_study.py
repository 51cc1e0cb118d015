"""The CPU study's pieces: a training budget in bytes (equal text for every tokenizer) and
validation bits per byte; a train-only grid (the learning-rate sweep); the study block of a
grid file; the report's comparisons (oriented as the study names them, flagged below 3 seeds
or 30 documents), the sweep's choice and the findings in sentences."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.grid import expand, load_grid, parse_grid
from bashkir_peft.config.report import ReportParams
from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.records import Budget
from bashkir_peft.report.build import build_report
from bashkir_peft.report.comparisons import comparisons_table
from bashkir_peft.report.cost import sweep_table
from bashkir_peft.report.findings import SPLIT_WORDS, findings
from bashkir_peft.train.budget import resolve_budget, validation_bits_per_byte
from report_synth import downstream_result, make_grid, stage_downstream_record

GRIDS = Path(__file__).resolve().parents[1] / "params" / "grids"

# the demo corpus's training split under SmolLM2's tokenizer (train.json of a cpu-study run)
SMOLLM2_TRAIN = {"tokens": 2_153_616, "bytes": 3_861_078}


def test_a_byte_budget_gives_each_tokenizer_the_steps_of_equal_text():
    p = TrainParams(train_bytes=36_000, eval_every_bytes=12_000, per_device_train_batch_size=8, block_size=128)
    base = resolve_budget(p, SMOLLM2_TRAIN, processes=1)
    assert base.bytes_per_token == pytest.approx(3_861_078 / 2_153_616)
    assert base.bytes_per_step == pytest.approx(1024 * 3_861_078 / 2_153_616)
    assert base.max_steps == 20  # ceil(36000 / 1835.9) = ceil(19.6)
    assert base.eval_steps == 7  # round(12000 / 1835.9) = round(6.5)
    adapted = resolve_budget(p, {"tokens": 1_000_000, "bytes": 6_050_000}, processes=1)
    assert adapted.max_steps == 6 and adapted.eval_steps == 2  # 6195.2 bytes a step
    two = resolve_budget(p, SMOLLM2_TRAIN, processes=2)  # two data-parallel ranks: half the steps
    assert two.max_steps == 10


def test_without_byte_settings_the_steps_are_the_parameters():
    p = TrainParams(max_steps=30, eval_steps=15)
    got = resolve_budget(p, SMOLLM2_TRAIN, 1)
    assert (got.max_steps, got.eval_steps) == (30, 15)


def test_validation_bits_per_byte_is_nats_per_token_over_bytes():
    val = {"tokens": 5418, "bytes": 9687}
    assert validation_bits_per_byte(math.log(2) * 9687 / 5418, val) == pytest.approx(1.0)
    assert validation_bits_per_byte(2.0, val) == pytest.approx(2.0 * 5418 / (9687 * math.log(2)))
    assert validation_bits_per_byte(2.0, {"tokens": 10}) is None


def test_byte_budget_excludes_max_steps_and_stays_out_of_old_records():
    with pytest.raises(ValidationError, match="train_bytes or max_steps"):
        TrainParams(train_bytes=1000, max_steps=10)
    assert not {"train_bytes", "eval_every_bytes"} & TrainParams().for_record().model_fields_set
    assert TrainParams(train_bytes=1000).for_record().model_dump(exclude_unset=True)["train_bytes"] == 1000


GRID = {"name": "g", "default_source": "ours: test", "matrix": {"model": ["tiny-gpt2"], "method": ["full", "lora"]}}


def test_a_train_only_grid_runs_the_training_stage_alone():
    cells = expand(parse_grid(GRID | {"stages": ["train"]}))
    assert [c.stages for c in cells] == [("train",), ("train",)]
    assert all(set(c.params) == {"train"} for c in cells)
    with pytest.raises(ConfigError, match="run no stage.*tiny-gpt2-base"):
        parse_grid(GRID | {"stages": ["train"], "matrix": {"model": ["tiny-gpt2"], "method": ["base", "full"]}})


def test_a_study_names_methods_of_its_own_cells():
    study = {"primary": {"a": "lora r=8", "b": "full", "question": "q?"}, "budget": "b"}
    assert parse_grid(GRID | {"study": study}).spec.study.primary.a == "lora r=8"
    with pytest.raises(ConfigError, match="'lora r=16' is not a method of this grid's cells"):
        parse_grid(GRID | {"study": study | {"primary": {"a": "lora r=16", "b": "full", "question": "q?"}}})


def test_the_shipped_study_grids():
    study, sweep = load_grid(GRIDS / "cpu-study.yaml"), load_grid(GRIDS / "cpu-study-lr.yaml")
    cells = expand(study)
    assert sorted({(c.method, c.tokenizer) for c in cells}) == [
        ("base", "base"), ("full", "base"), ("lora", "bak16k"), ("lora", "base")]
    assert {c.seed for c in cells if c.method != "base"} == {42, 123, 2024}
    assert all(c.params["train"]["train_bytes"] == 36_000 for c in cells if c.trains)
    assert study.spec.study.learning_rate_sweep == sweep.name
    assert all(c.stages == ("train",) for c in expand(sweep))
    rates = {c.method: set() for c in expand(sweep)}
    for c in expand(sweep):
        rates[c.method].add(c.params["train"].get("learning_rate"))
    assert (len(rates["full"]), len(rates["lora"])) == (3, 4)  # the default (None) and larger ones
    chosen = {c.method: c.params["train"]["learning_rate"] for c in cells if c.trains}
    assert chosen["full"] in rates["full"] and chosen["lora"] in rates["lora"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    runs = make_grid(tmp_path_factory.mktemp("study") / "runs")
    return build_report(ReportParams(grid="synth", runs_dir=str(runs), n_resamples=500))


def test_comparisons_are_oriented_as_named_and_flagged_below_the_rules(synth):
    diffs = synth.tables["differences"].set_index(["method_a", "method_b"])
    design = StudyDesign(primary={"a": "base", "b": "lora r=8", "question": "Does LoRA help?"},
                         secondary=[{"a": "lora r=8", "b": "full", "question": "q"}], budget="b")
    comp = comparisons_table(synth.runs, design, protocol="rolling", n_resamples=500).set_index("role")
    primary, ref = comp.loc["primary"], diffs.loc[("lora r=8", "base")]
    assert primary["difference"] == pytest.approx(-ref["difference"])  # base − lora = −(lora − base)
    assert (primary["ci_low"], primary["ci_high"]) == pytest.approx((-ref["ci_high"], -ref["ci_low"]))
    assert primary["bpb_a"] == pytest.approx(ref["bpb_b"])
    assert pd.isna(primary["flag"])  # 3 seeds of lora, the seed-free base, 60 documents
    assert comp.loc["secondary", "flag"] == "no interval; fewer than 3 seeds"  # full has 2 seeds


def test_findings_state_each_comparison_with_its_interval_and_verdict(synth):
    design = StudyDesign(primary={"a": "lora r=8", "b": "base", "question": "Does LoRA help?"}, budget="36 kB")
    comp = comparisons_table(synth.runs, design, protocol="rolling", n_resamples=500)
    result = type(synth)(**{**synth.__dict__, "tables": {**synth.tables, "comparisons": comp}})
    text = findings(result, design)
    row = comp.iloc[0]
    primary = next(s for s in text if s.startswith("**Primary.**"))
    assert "Does LoRA help?" in primary and f"{row['difference']:+.3f}" in primary
    assert f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" in primary
    # synthetic LoRA (~2.45 bits per byte) against base (3.00): lower is better
    assert row["ci_high"] < 0 and "lora r=8 is better than base: the interval excludes 0" in primary
    assert any(s.startswith("**Design, named before the runs.** Budget: 36 kB.") for s in text)
    assert any(s.startswith("**Cells.**") for s in text)


def test_what_cannot_yet_be_said_is_one_sentence_and_a_demonstration_says_it_is_one(synth):
    import re

    design = StudyDesign(primary={"a": "lora r=8", "b": "base", "question": "Does LoRA help?"},
                         secondary=[{"a": "lora r=8", "b": "full", "question": "q"}], budget="b")
    comp = comparisons_table(synth.runs, design, protocol="rolling", n_resamples=500)
    result = type(synth)(**{**synth.__dict__, "tables": {**synth.tables, "comparisons": comp}})
    text = findings(result, design)
    flagged = comp[comp["role"] == "secondary"].iloc[0]  # full has 2 seeds: no interval
    [unsure] = [s for s in text if s.startswith("**What cannot yet be said**")]
    assert "fewer than 3 seeds" in unsure and f"lora r=8 − full on {SPLIT_WORDS['test']} = {flagged['difference']:+.3f}" in unsure
    assert not any(s.startswith("**Secondary.**") for s in text)  # no paragraph per flagged pair
    assert any(s.startswith("**Primary.**") for s in text)
    assert not re.search(r"\bnan\b", " ".join(text), re.I)
    demo = findings(result, None)
    assert demo[0].startswith("**A demonstration of the pipeline, not a study.**") and "make study-book" in demo[0]
    assert not any(s.startswith("**Design, named before the runs.**") for s in demo)


def test_the_sweep_chooses_the_lowest_validation_bits_per_byte():
    class Run:
        def __init__(self, label, lr, bpb):
            from types import SimpleNamespace as NS
            self.model, self.method_label = "m", label
            budget = Budget(max_steps=10, eval_steps=10, bytes_per_step=1800.0)
            self.train = NS(status="finished", final_eval=NS(bits_per_byte=bpb), params=NS(learning_rate=lr),
                            global_step=10, tokens_seen=10240, budget=budget, text_seen=budget.text_seen(10))

    runs = [Run("full", 5e-5, 2.4), Run("full", 2e-4, 2.1), Run("full", 8e-4, 2.3), Run("lora r=8", 1e-3, 2.6),
            Run("lora r=8", 2e-4, 3.0)]
    s = sweep_table(runs)
    assert list(s["learning_rate"]) == [5e-5, 2e-4, 8e-4, 2e-4, 1e-3]
    assert list(s[s["chosen"]]["learning_rate"]) == [2e-4, 1e-3]
    assert list(s["train_bytes_seen"]) == [18000] * 5


def test_the_estimate_counts_a_byte_budget_at_the_model_tokenizers_bytes_per_token(tmp_path):
    from bashkir_peft.grid.gputime import base_bytes_per_token, budget_tokens

    pd.DataFrame({"model": ["gpt2", "smollm2-135m"], "bytes_per_token": [1.49, 1.7928]}).to_parquet(
        tmp_path / "tokenizer_fertility.parquet")
    bpt = base_bytes_per_token(tmp_path, "smollm2-135m")
    assert bpt == pytest.approx(1.7928) and base_bytes_per_token(tmp_path, "mistral-7b") is None
    p = TrainParams(train_bytes=36_000, per_device_train_batch_size=8, block_size=128)
    assert budget_tokens(p, bpt) == 20 * 8 * 128
    assert budget_tokens(p, None) is None


def test_downstream_accuracy_differences_have_intervals_over_seeds_and_sentences(tmp_path):
    import numpy as np

    from bashkir_peft.records import RunFiles, write_record
    from bashkir_peft.report.downstream import downstream_comparisons
    from bashkir_peft.report.runs import discover_runs

    root = make_grid(tmp_path / "runs", failed=False)
    runs = [r for r in discover_runs(root) if r.status == "finished"]
    rng = np.random.default_rng(1)
    ids, cats = np.arange(40), rng.choice(list("abcd"), 40)
    rate = {"base": 0.25, "full": 0.5, "lora r=8": 0.75}
    correct: dict[str, list[np.ndarray]] = {}
    for run in runs:
        hit = rng.random(40) < rate[run.method_label]
        correct.setdefault(run.method_label, []).append(hit.astype(float))
        # the zero-shot classifier is chosen by its record's typed fields (k=0, score acc), not by
        # its setting's words: a 10-shot one (its setting also ends with "0-shot, acc") is not it
        pred = {"0-shot, acc": np.where(hit, cats, "none"), "10-shot, acc": np.full(40, "none")}
        results = [downstream_result("in_context", "0-shot, acc", hit.mean(), 0.2, k=0, score="acc"),
                   downstream_result("in_context", "10-shot, acc", 0.0, 0.0, k=10, score="acc")]
        write_record(run.path / RunFiles.DOWNSTREAM, stage_downstream_record(run.model, str(run.path), run.method,
                                                                             results))
        pd.concat([pd.DataFrame({"approach": "in_context", "setting": setting, "index_id": ids, "category": cats,
                                 "prediction": p}) for setting, p in pred.items()]).to_parquet(
            run.path / RunFiles.DOWNSTREAM_PREDICTIONS)
    runs = [r for r in discover_runs(root) if r.status == "finished"]
    dc = downstream_comparisons(runs, None, n_resamples=500).set_index(["a", "b"])
    lora = dc.loc[("lora r=8", "base")]
    true = np.mean(correct["lora r=8"]) - np.mean(correct["base"])
    assert lora["difference"] == pytest.approx(true) and lora["ci_low"] < true < lora["ci_high"]
    assert lora["n_documents"] == 40 and pd.isna(lora["flag"]) and lora["measure"] == "zero-shot accuracy"
    full = dc.loc[("full", "base")]  # two seeds of full: no interval, flagged
    assert full["difference"] == pytest.approx(np.mean(correct["full"]) - np.mean(correct["base"]))
    assert full["flag"] == "no interval; fewer than 3 seeds"
    assert set(dc["measure"]) == {"zero-shot accuracy"}  # no probe in these records
    # exploratory, Holm within the downstream family: the one row with an interval stands alone
    assert lora["p_value"] < 0.05 and lora["p_holm"] == lora["p_value"] and pd.isna(full["p_holm"])


def test_a_study_grid_file_brings_its_design_and_its_sweep_into_the_report(tmp_path):
    import math as m

    from bashkir_peft.records import FinalEval, RunFiles, write_record
    from bashkir_peft.report.runs import discover_runs

    study_runs = make_grid(tmp_path / "runs" / "synth-study", failed=False)
    sweep_runs = make_grid(tmp_path / "runs" / "synth-lr", failed=False)
    # the sweep: full 1e-4 -> 2.5, 3e-4 -> 2.2 (chosen); lora 1e-4 -> 2.0 (chosen), 3e-4 -> 2.3, 1e-3 -> 2.6
    swept = {"full": [(1e-4, 2.5), (3e-4, 2.2)], "lora": [(1e-4, 2.0), (3e-4, 2.3), (1e-3, 2.6)]}
    for run in discover_runs(sweep_runs):
        if run.train is None:
            continue
        lr, bpb = swept[run.method].pop(0)
        write_record(run.path / RunFiles.TRAIN, run.train.model_copy(update={
            "params": run.train.params.model_copy(update={"learning_rate": lr}),
            "final_eval": FinalEval(eval_loss=1.0, perplexity=m.e, blocks=4, bits_per_byte=bpb)}))
    grid = tmp_path / "synth-study.yaml"
    grid.write_text(
        "name: synth-study\ndefault_source: 'ours: test'\n"
        "study: {primary: {a: lora r=8, b: full, question: 'Is LoRA as good?'}, budget: 10 steps,"
        " learning_rate_sweep: synth-lr}\n"
        "matrix: {model: [tiny-gpt2], method: [base, full, lora], seed: [42, 123, 2024]}\n", encoding="utf-8")
    result = build_report(ReportParams(grid=str(grid), runs_dir=str(study_runs), n_resamples=200))
    assert result.design.primary.a == "lora r=8" and result.design.learning_rate_sweep == "synth-lr"
    sweep = result.tables["sweep"]
    assert sorted(zip(sweep[sweep["chosen"]]["method_label"], sweep[sweep["chosen"]]["learning_rate"])) == [
        ("full", 3e-4), ("lora r=8", 1e-4)]
    text = "\n".join(findings(result, result.design))
    # the synthetic study's runs trained at 1e-4: LoRA's choice, not full fine-tuning's
    assert "full 0.0003 (of 0.0001, 0.0003; validation 2.200 bits per byte; **the study's runs use 0.0001 instead**)" \
        in text
    assert "lora r=8 0.0001 (of 0.0001, 0.0003, 0.001; validation 2.000 bits per byte; the study's runs use it)" in text
    assert "Is LoRA as good?" in text and "figures" in str(result.figures["learning_rate_sweep"].parent)
