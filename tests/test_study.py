"""The CPU study's pieces: a training budget in bytes (equal text for every tokenizer) and
validation bits per byte; a train-only grid (the learning-rate sweep); the study block of a
grid file; the report's comparisons (oriented as the study names them, flagged below 3 seeds
or 30 documents), the sweep's choice and the findings in sentences."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from bashkir_peft.config.design import StudyDesign
from bashkir_peft.config.grid import expand, load_grid, parse_grid
from bashkir_peft.config.report import ReportParams
from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.report.build import build_report
from bashkir_peft.report.comparisons import comparisons_table
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
    arms = {}
    for c in cells:
        arms.setdefault((c.method, c.lora_r, c.label, c.tokenizer), set()).add(c.seed)
    five, three = {42, 123, 2024, 7, 3407}, {42, 123, 2024}
    assert arms == {("base", None, None, "base"): {42}, ("full", None, None, "base"): five,
                    ("lora", 8, None, "base"): five, ("full", None, "long", "base"): five,
                    ("lora", 8, "long", "base"): five, ("lora", 64, "rslora", "base"): three,
                    ("lora", 8, "attn", "base"): three, ("lora", 8, "prot", "bakprot"): three,
                    ("lora", 8, None, "bak16k"): {42, 123}, ("lora", 8, None, "bak16kwarm"): {42, 123},
                    ("lora", 8, "equal-steps", "bak16k"): {42}}
    budget = {c.label == "long": c.params["train"]["train_bytes"] for c in cells if c.trains and c.label != "equal-steps"}
    assert budget == {False: 36_000, True: 180_000}  # five times the budget
    steps = {c.params["train"]["max_steps"] for c in cells if c.label == "equal-steps"}
    assert steps == {20}  # the base tokenizer's steps at 36,000 bytes (tests above)
    assert study.spec.study.learning_rate_sweep == sweep.name and study.spec.study.label_arms == ["long", "equal-steps"]
    # the sweep: the study's short budget, seeds that are not study seeds, a base cell for the frontier
    swept = expand(sweep)
    assert all(c.params["train"]["train_bytes"] == 36_000 for c in swept if c.trains)
    assert not {c.seed for c in swept if c.trains} & five
    assert {c.stages for c in swept} == {("train", "evaluate"), ("evaluate",)}
    # the parts of the study: every cell in exactly one; the quick tier's cells are the grid's own
    parts = {n: {c.slug for c in cells if t.matches(c)} for n, t in study.spec.tiers.items()}
    in_parts = [slug for n, slugs in parts.items() if n != "quick" for slug in slugs]
    assert sorted(in_parts) == sorted(c.slug for c in cells)
    assert parts["quick"] <= parts["part2"] and len(parts["quick"]) == 5
    # every trained arm's rate is one its sweep tried, for the same arm; issue 32's 16,000-token
    # arms (exploratory) take the rate swept for the adapted tokenizer (the protected one)
    tried: dict[tuple, set] = {}
    for c in swept:
        if c.trains:
            key = (c.method, c.lora_r, c.tokenizer, bool(c.params["train"].get("target_modules")))
            tried.setdefault(key, set()).add(c.params["train"]["learning_rate"])
    for c in cells:
        if c.trains:
            tokenizer = "bakprot" if c.tokenizer in ("bak16k", "bak16kwarm") else c.tokenizer
            key = (c.method, c.lora_r, tokenizer, bool(c.params["train"].get("target_modules")))
            assert c.params["train"]["learning_rate"] in tried[key], c.slug


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


def test_the_forest_plot_gives_forgetting_a_panel_and_a_scale_of_its_own(tmp_path, monkeypatch):
    from bashkir_peft.report import figures

    drawn = {}

    def keep(fig, path):
        drawn["panels"] = [([t.get_text() for t in ax.get_yticklabels()], ax.get_xlim()) for ax in fig.axes]
        return path

    monkeypatch.setattr(figures, "_save", keep)
    comp = pd.DataFrame([
        {"role": "primary", "a": "lora r=8", "b": "full", "split": "s", "difference": 0.05, "ci_low": 0.0,
         "ci_high": 0.1, "flag": None, "family": "primary"},
        {"role": "forgetting", "a": "full", "b": "base", "split": "flores-rus", "difference": 1.3, "ci_low": 1.2,
         "ci_high": 1.4, "flag": None, "family": "forgetting"}])
    figures.study_comparisons(comp, pd.DataFrame(), tmp_path / "f.png")
    (study_labels, study_x), (kept_labels, kept_x) = drawn["panels"]
    assert study_labels == ["primary: lora r=8 − full (s)"] and kept_labels == ["forgetting: full − base (flores-rus)"]
    assert study_x[1] < 0.5 < 1.4 <= kept_x[1]  # the comparison is not squeezed to forgetting's range


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
    assert ("full 0.0003 (of 0.0001, 0.0003; validation 2.200 bits per byte, mean of 1 seed per rate; **at the edge "
            "of the rates tried: the grid should extend one step above**; **the study's runs use 0.0001 instead**)") \
        in text
    assert ("lora r=8 0.0001 (of 0.0001, 0.0003, 0.001; validation 2.000 bits per byte, mean of 1 seed per rate; "
            "**at the edge of the rates tried: the grid should extend one step below**; the study's runs use it)") in text
    assert "Is LoRA as good?" in text and "figures" in str(result.figures["learning_rate_sweep"].parent)


def test_a_label_the_study_names_an_arm_is_compared_apart(synth):
    """Runs labelled ``long`` (say, five times the budget) carry ``@long`` in their method label
    and are compared among themselves, never pooled with the unlabelled runs of their method."""
    import dataclasses

    from bashkir_peft.report.runs import with_arms

    def labelled(run, label):
        params = run.cell.params.model_copy(update={"label": label})
        return dataclasses.replace(run, cell=run.cell.model_copy(update={"params": params}))

    finished = [r for r in synth.runs if r.status == "finished"]
    long_seeds = {r.seed for r in finished if r.method_label == "lora r=8"}
    runs = [labelled(r, "long") if r.method_label in ("lora r=8", "full") else r for r in finished]
    armed = with_arms(runs, ["long"])
    assert {r.method_label for r in armed} == {"base", "full @long", "lora r=8 @long"}
    assert {r.method_label for r in with_arms(runs, [])} == {"base", "full", "lora r=8"}  # a label alone pools
    design = StudyDesign(primary={"a": "lora r=8 @long", "b": "base", "question": "q"}, budget="b",
                         label_arms=["long"])
    row = comparisons_table(armed, design, protocol="rolling", n_resamples=200).set_index("role").loc["primary"]
    plain = comparisons_table(finished, design.model_copy(update={
        "primary": design.primary.model_copy(update={"a": "lora r=8"}), "label_arms": []}),
        protocol="rolling", n_resamples=200).set_index("role").loc["primary"]
    assert row["n_seeds_a"] == len(long_seeds)
    assert row["difference"] == pytest.approx(plain["difference"])  # the same runs, now named as an arm


def test_the_study_block_names_arms_by_label_and_tiers_select_cells():
    grid = GRID | {"matrix": {"model": ["tiny-gpt2"], "method": ["base", "full", "lora"], "seed": [1, 2]},
                   "include": [{"model": "tiny-gpt2", "method": "lora", "seed": 1, "label": "long"}]}
    study = {"primary": {"a": "lora r=8 @long", "b": "full", "question": "q?"}, "budget": "b",
             "label_arms": ["long"]}
    assert parse_grid(grid | {"study": study}).spec.study.label_arms == ["long"]
    with pytest.raises(ConfigError, match="'lora r=8 @long' is not a method"):
        parse_grid(grid | {"study": study | {"label_arms": []}})  # without the arm, the label pools
    with pytest.raises(ConfigError, match="label_arms short: no cell has this label"):
        parse_grid(grid | {"study": study | {"label_arms": ["long", "short"]}})
    tiers = {"quick": {"note": "one seed, no labelled cell", "select": [{"seed": [1], "label": [None]}]},
             "two": {"note": "a union", "select": [{"seed": [2], "method": ["full"]}, {"label": ["long"]}]}}
    spec = parse_grid(grid | {"tiers": tiers}).spec
    cells = expand(parse_grid(grid | {"tiers": tiers}))
    quick = [c.slug for c in cells if spec.tiers["quick"].matches(c)]
    assert sorted(quick) == ["tiny-gpt2-base-s1", "tiny-gpt2-full-s1", "tiny-gpt2-lora-r8-s1"]
    two = [c.slug for c in cells if spec.tiers["two"].matches(c)]
    assert sorted(two) == ["tiny-gpt2-full-s2", "tiny-gpt2-lora-r8-s1-long"]
    with pytest.raises(ConfigError, match="tiers: none: selects no cell"):
        parse_grid(grid | {"tiers": {"none": {"note": "n", "select": [{"seed": [3]}]}}})


def test_a_tier_runs_the_grids_own_cells_with_their_run_ids(tmp_path):
    from bashkir_peft.grid.runner import plan

    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(GRID | {"matrix": {"model": ["tiny-gpt2"], "method": ["full", "lora"],
                                                      "seed": [1, 2]},
                                           "tiers": {"quick": {"note": "n", "select": [{"seed": [1]}]}}}))
    whole = plan(load_grid(path), None, runs_root=tmp_path / "runs", need_corpus=False)
    quick = plan(load_grid(path), None, runs_root=tmp_path / "runs", need_corpus=False, tier="quick")
    ids = {p.cell.slug: p.run_id for p in whole.cells}
    assert {p.cell.slug: p.run_id for p in quick.cells} == {k: v for k, v in ids.items() if "-s1" in k}
    with pytest.raises(ConfigError, match="--tier slow: grid 'g' has no such tier \\(its tiers: quick\\)"):
        plan(load_grid(path), None, runs_root=tmp_path / "runs", need_corpus=False, tier="slow")


def test_cells_sentence_counts_the_parts_not_run_yet():
    """A study built from some of its parts' bundles says how many of the grid's cells it holds
    and that the others have not run (not 8 cells of 30 as if they were all)."""
    import pandas as pd

    from bashkir_peft.report.findings import _cells_sentence

    runs = pd.DataFrame({"run_id": ["a", "b", "c"], "status": ["finished", "finished", "interrupted"]})
    failures = pd.DataFrame({"run_id": ["c", "d", "e", "f"],
                             "status": ["interrupted", "not started", "not started", "corrupt"]})
    text = _cells_sentence(runs, failures)
    assert text.startswith("**Cells.** 6 cells: 2 finished, 2 not started, 1 interrupted, 1 corrupt.")
    assert "not run yet" in text
    assert _cells_sentence(runs, failures.iloc[:0]) == "**Cells.** 3 cells: 2 finished, 1 interrupted."
