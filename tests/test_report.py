"""The report: aggregation of synthetic run records (the contract's file layout) into tables.

What is pinned down: mean/std/n over seeds equal numpy's on the runs' own metrics; the
interval of a difference between methods covers the true difference, and where a method has
too few seeds the table says so instead;
failed and unfinished runs are left out of the results and listed with their errors;
the paper's numbers are labelled as quoted; missing stages are tolerated; a record that does
not match the contract fails the report with one line naming the file and the field.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.cli import main
from bashkir_peft.config.report import ReportParams
from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.records import DataFiles, EvalRecord, RecordError, RunFiles, read_record
from bashkir_peft.report.build import build_report
from bashkir_peft.report.generation import generation_table
from bashkir_peft.report.lm import differences_table, metrics_table, summary_table
from bashkir_peft.report.paper import PAPER_NUMBERS, data_modes, paper_table
from bashkir_peft.report.runs import discover_runs, index_gaps
from bashkir_peft.report.tokenizers import fertility_table
from bashkir_peft.report.views import per_run_table
from bashkir_peft.yamlio import validate
from report_synth import CELLS, documents, make_grid, write_index, write_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = make_grid(tmp_path_factory.mktemp("grid") / "runs")
    return build_report(ReportParams(grid="synth", runs_dir=str(runs), n_resamples=500))


def _own_metric(run_dir: Path, protocol: str, metric: str) -> float:
    rec = read_record(run_dir / RunFiles.EVAL, EvalRecord)
    return getattr(rec.evaluations[f"{protocol}/test"].metrics, metric)


def test_summary_mean_std_n_over_seeds(report):
    s = report.tables["summary"].set_index(["method_label", "protocol"])
    for label, method in (("full", "full"), ("lora r=8", "lora")):
        dirs = [report.runs_dir / f"run{i:02d}-{m}" for i, (_, m, *_) in enumerate(CELLS) if m == method]
        for protocol in ("rolling", "paper"):
            for metric in ("perplexity", "bits_per_byte", "word_perplexity"):
                vals = np.array([_own_metric(d, protocol, metric) for d in dirs])
                row = s.loc[(label, protocol)]
                assert row["n"] == len(dirs) == sum(c[1] == method for c in CELLS)
                assert row[f"{metric}_mean"] == pytest.approx(vals.mean(), rel=1e-12)
                assert row[f"{metric}_std"] == pytest.approx(vals.std(ddof=1), rel=1e-12)
    base = s.loc[("base", "rolling")]
    assert base["n"] == 1 and math.isnan(base["bits_per_byte_std"])


def test_metrics_are_tidy_per_source(report):
    m = report.tables["metrics"]
    one = m[(m["run_id"] == "run01-full") & (m["protocol"] == "rolling")]
    assert set(one["source"]) == {"all", "news", "wiki"}
    assert set(m["protocol"]) == {"rolling", "paper"} and report.protocol == "rolling"


def test_differences_between_methods_contain_the_true_gap(report):
    d = report.tables["differences"].set_index(["method_a", "method_b"])
    true = {}
    for _, method, r, _, bpb in CELLS:
        true.setdefault(method, []).append(bpb)
    mean = {k: float(np.mean(v)) for k, v in true.items()}
    row = d.loc[("lora r=8", "base")]  # 3 seeds against the seed-free base: an interval
    gap = mean["lora"] - mean["base"]
    assert row["ci_low"] <= gap <= row["ci_high"], row.to_dict()
    assert row["ci_high"] - row["ci_low"] > 0 and pd.isna(row["note"])
    for a, b in (("full", "base"), ("lora r=8", "full")):  # full has 2 seeds: no interval, a note why
        row = d.loc[(a, b)]
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
        assert row["note"] == "full: 2 seeds; the seed level needs at least 3, so no interval"
    for (a, b), row in d.iterrows():
        assert row["difference"] == pytest.approx(row["bpb_a"] - row["bpb_b"])
        assert row["n_documents"] == 60
    assert d.loc[("lora r=8", "full"), "n_seeds_a"] == 3 and d.loc[("lora r=8", "full"), "n_seeds_b"] == 2


def test_failed_and_unfinished_runs_are_listed_apart(report):
    f = report.tables["failures"].set_index("run_id")
    assert f.loc["run99-qlora", "status"] == "failed"
    assert f.loc["run99-qlora", "failed_stage"] == "train"
    assert "Target modules" in f.loc["run99-qlora", "error"]
    assert f.loc["run98-lora", "status"] == "interrupted"  # running, no process holds it: as `grid status` says
    for name in ("metrics", "summary", "quality_cost", "generation"):
        t = report.tables[name]
        assert not t.empty
        if "run_id" in t.columns:
            assert not set(t["run_id"]) & {"run99-qlora", "run98-lora"}
        assert not (t.get("method_label", pd.Series(dtype=str)).str.startswith("qlora")).any()
    assert list(per_run_table(report)["run_id"]) == ["run00-base", "run01-full", "run02-full",
                                                   "run03-lora", "run04-lora", "run05-lora"]


def test_paper_table_is_labelled_and_matches_our_cells(tmp_path):
    runs = tmp_path / "runs"
    rng = np.random.default_rng(1)
    docs = documents(rng, 20)
    write_run(runs, "a", "gpt2-medium", "full", None, 42, 2.0, docs, rng)
    write_run(runs, "b", "gpt2-medium", "full", None, 123, 2.1, docs, rng, generate=False)
    found = discover_runs(runs)
    summary = summary_table(metrics_table(found))
    p = paper_table(summary)
    assert list(zip(p["model"], p["method"], p["paper"])) == [
        ("gpt2-medium", "full", 3.34), ("mistral-7b", "qlora", 3.79), ("phi-2", "qlora", 3.81),
        ("deepseek-7b", "peft r=8", 129.55)]
    assert [r["perplexity"] for r in PAPER_NUMBERS] == list(p["paper"])
    assert p["paper_source"].str.contains("quoted from the paper").all()
    ours = p[p["model"] == "gpt2-medium"].iloc[0]
    s = summary.set_index(["method_label", "protocol"]).loc[("full", "paper")]
    assert ours["ours_mean"] == pytest.approx(s["perplexity_mean"]) and ours["ours_n"] == 2
    assert p[p["model"] != "gpt2-medium"]["ours_mean"].isna().all()
    # the paper's "PEFT ... DeepSeek-7B with rank 8" (method unstated) faces LoRA and QLoRA r=8, not r=16
    write_run(runs, "c", "deepseek-7b", "lora", 8, 42, 3.0, docs, rng, generate=False)
    write_run(runs, "d", "deepseek-7b", "qlora", 8, 42, 3.1, docs, rng, generate=False)
    write_run(runs, "e", "deepseek-7b", "lora", 16, 42, 3.2, docs, rng, generate=False)
    deep = paper_table(summary_table(metrics_table(discover_runs(runs))))
    assert sorted(deep.loc[deep["model"] == "deepseek-7b", "ours_method"]) == ["lora r=8", "qlora r=8"]
    for x in ("c", "d", "e"):
        shutil.rmtree(runs / x)
    # each of our numbers says which data mode produced it (read from the runs' data folder)
    assert data_modes(found)[("gpt2-medium", "full")].startswith("unknown (no readable manifest")
    empty = pd.DataFrame({"id": [], "source": [], "text": []}, dtype=str)
    write_presplit_folder(runs / "data", {k: empty for k in ("train", "validation", "test")}, "fp", {"kind": "x", "location": "x"})
    manifest = json.loads((runs / "data" / "manifest.json").read_text())
    (runs / "data" / "manifest.json").write_text(json.dumps({**manifest, "params": {"data_mode": "paper"}}))
    p = paper_table(summary, data_modes(found))
    assert p.loc[p["model"] == "gpt2-medium", "ours_data_mode"].tolist() == ["paper"]
    assert p.loc[p["model"] != "gpt2-medium", "ours_data_mode"].isna().all()
    # A run without generation is still a result; it is absent from the generation table only.
    assert set(generation_table(found)["run_id"]) == {"a"}


def test_generation_language_by_method_with_the_reference_text(report):
    g = report.tables["generation_summary"].set_index("method_label")
    assert list(g.index) == ["reference text", "base", "full", "lora r=8"]
    assert g.loc["full", "share_eng"] == pytest.approx(0.35) and g.loc["full", "code_switch_rate"] == pytest.approx(0.4)
    assert g.loc["full", "n"] == 2 and g.loc["full", "n_continuations"] == 10
    # intervals over prompts within seeds: 2 seeds x 10 prompts, 4 of 10 switching per seed
    assert g.loc["full", "n_prompts"] == 20
    assert g.loc["full", "code_switch_rate_low"] < 0.4 < g.loc["full", "code_switch_rate_high"]
    # every prompt has the same letter shares: nothing to resample
    assert g.loc["full", "share_eng_low"] == pytest.approx(0.35) == g.loc["full", "share_eng_high"]
    assert g.loc["reference text", "share_bak"] == 1.0 and g.loc["reference text", "n"] == 1


def test_rate_interval_resamples_prompts_within_seeds_not_seeds():
    from bashkir_peft.report.bootstrap import pooled_rate_interval

    # one seed always switches, the other never: the pooled rate is 0.5 and, the seeds being
    # kept, every resample is 0.5 too
    ci = pooled_rate_interval([np.ones(30), np.zeros(30)])
    assert (ci.estimate, ci.low, ci.high, ci.n_items, ci.n_groups) == (0.5, 0.5, 0.5, 60, 2)
    # a ratio of sums: letters weigh, not prompts
    ci = pooled_rate_interval([np.array([10.0, 0.0])], [np.array([10.0, 30.0])])
    assert ci.estimate == 0.25 and 0 <= ci.low <= 0.25 <= ci.high <= 1
    # within one seed the interval is the usual bootstrap one: 95 % for a rate of 0.3 from
    # 200 prompts is about +-0.064 (binomial standard error 0.0324 x 1.96)
    rng = np.random.default_rng(0)
    x = (rng.random(200) < 0.3).astype(float)
    ci = pooled_rate_interval([x], seed=1)
    half = 1.96 * math.sqrt(x.mean() * (1 - x.mean()) / 200)
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.15)
    with pytest.raises(DataError):
        pooled_rate_interval([np.ones(3)], [np.ones(2)])


def test_missing_stages_are_tolerated(report):
    runs = report.tables["runs"].set_index("run_id")
    assert runs.loc["run00-base", "trainable_params"] == 0  # zero-shot: no train.json
    # Training seeds only: the generation record's decoding seed is not the cell's seed.
    assert pd.isna(runs.loc["run00-base", "seed"]) and runs.loc["run02-full", "seed"] == 123
    assert runs.loc["run01-full", "wall_time_s"] == pytest.approx(20.0)
    assert runs.loc["run03-lora", "trainable_params"] == 4096 * 8
    fert = report.tables["fertility"]
    docs = pd.read_parquet(report.runs_dir / "run01-full" / RunFiles.EVAL_DOCUMENTS)
    docs = docs[docs["protocol"] == "rolling"]
    assert fert["fertility"].iloc[0] == pytest.approx(docs["tokens"].sum() / docs["words"].sum())


def test_fertility_comes_from_the_data_prep_table_when_there_is_one(report, tmp_path):
    pd.DataFrame({"model": ["gpt2", "mistral-7b"], "tokenizer": ["gpt2", "mistral-7b"], "split": "test",
                  "fertility": [4.5, 2.25]}).to_parquet(tmp_path / DataFiles.FERTILITY)
    fert = fertility_table(report.runs, report.tables["quality_cost"], tmp_path, "rolling")
    assert (fert["fertility"] == 4.5).all()  # tiny-gpt2 uses the gpt2 tokenizer
    assert fert["fertility_source"].str.startswith("data prep (gpt2 tokenizer").all()


def test_tables_and_figures_are_written(report):
    for name, df in report.tables.items():
        csv, pq = report.out_dir / "tables" / f"{name}.csv", report.out_dir / "tables" / f"{name}.parquet"
        assert csv.is_file() and pq.is_file()
        assert len(pd.read_parquet(pq)) == len(df)
    assert set(report.figures) == {"metrics_by_method", "differences", "params_vs_bpb", "cost_vs_quality",
                                   "fertility_vs_bpb", "generation_language", "study_comparisons"}
    for path in report.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no runs folder"):
        build_report(ReportParams(grid="nope", runs_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no run records"):
        build_report(ReportParams(grid="x", runs_dir=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match="no such file"):
        build_report(ReportParams(grid=str(tmp_path / "absent.yaml")))
    with pytest.raises(ConfigError, match="confidence"):
        validate(ReportParams, {"grid": "x", "confidence": 1.5}, "report parameters")
    assert main(["report", "nope", "--runs-dir", str(tmp_path / "missing")]) == 2
    rng = np.random.default_rng(2)
    write_run(tmp_path / "root" / "synth", "a", "tiny-gpt2", "base", None, None, 3.0, documents(rng, 10), rng)
    assert main(["report", "synth", "--runs-dir", str(tmp_path / "root")]) == 0
    assert (tmp_path / "root" / "synth" / "report" / "tables" / "summary.csv").is_file()


def test_a_half_written_record_is_corrupt_not_a_failed_run(tmp_path):
    runs = make_grid(tmp_path / "runs", failed=False)
    path = runs / "run05-lora" / RunFiles.GENERATE
    path.write_text('{"status": "fini')
    assert "run05-lora" not in {r.run_id for r in discover_runs(runs)}
    [gap] = [g for g in index_gaps(runs) if g["run_id"] == "run05-lora"]
    assert gap["status"] == "corrupt" and gap["error"].startswith(f"{path}: unreadable record")


def _report_cli(runs_root: Path, capsys) -> tuple[int, list[str]]:
    """Run ``bashkir-peft report synth`` over ``runs_root/synth``: exit status, stderr lines."""
    capsys.readouterr()
    status = main(["report", "synth", "--runs-dir", str(runs_root)])
    return status, capsys.readouterr().err.strip().splitlines()


def test_a_renamed_field_of_the_evaluation_record_is_listed_as_corrupt(tmp_path, capsys):
    runs = make_grid(tmp_path / "root" / "synth")
    path = runs / "run03-lora" / RunFiles.EVAL
    rec = json.loads(path.read_text())
    metrics = rec["evaluations"]["rolling/test"]["metrics"]
    metrics["bpb"] = metrics.pop("bits_per_byte")
    path.write_text(json.dumps(rec))
    status, err = _report_cli(tmp_path / "root", capsys)
    assert status == 0, err
    failures = pd.read_csv(runs / "report" / "tables" / "failures.csv").set_index("run_id")
    error = failures.loc["run03-lora", "error"]
    assert failures.loc["run03-lora", "status"] == "corrupt"
    assert str(path) in error and "evaluations.rolling/test.metrics.bits_per_byte" in error and "missing" in error


def test_a_renamed_column_of_the_per_document_table_fails_in_one_line(tmp_path, capsys):
    runs = make_grid(tmp_path / "root" / "synth")
    path = runs / "run03-lora" / RunFiles.EVAL_DOCUMENTS
    pd.read_parquet(path).rename(columns={"nll": "nll_sum"}).to_parquet(path)
    status, err = _report_cli(tmp_path / "root", capsys)
    assert status == 2 and len(err) == 1, err
    assert err[0] == f"error: {path}: column 'nll': missing"


def test_a_missing_document_id_column_is_an_error_not_row_numbers(tmp_path):
    runs = make_grid(tmp_path / "runs", failed=False)
    path = runs / "run01-full" / RunFiles.EVAL_DOCUMENTS
    pd.read_parquet(path).drop(columns="id").to_parquet(path)
    with pytest.raises(RecordError, match="column 'id': missing"):
        differences_table(discover_runs(runs), protocol="rolling")


def test_records_written_before_the_schema_version_are_read_through_the_upgrade(tmp_path, report):
    runs = make_grid(tmp_path / "runs")
    for path in runs.rglob("*.json"):  # as version 0 wrote them: no schema_version, version-1 shapes
        rec = json.loads(path.read_text())
        del rec["schema_version"]
        if path.name == "train.json":
            rec["learning_rate"] = rec["params"]["learning_rate"]
        if path.name == "grid.json":
            rec["data"] = {}
        path.write_text(json.dumps(rec))
    old = build_report(ReportParams(grid="synth", runs_dir=str(runs), n_resamples=500))
    pd.testing.assert_frame_equal(old.tables["summary"], report.tables["summary"])
    assert list(old.tables["failures"]["run_id"]) == ["run98-lora", "run99-qlora"]


def test_only_the_current_cells_of_the_grid_index_are_results(tmp_path):
    runs = tmp_path / "runs"
    rng = np.random.default_rng(2)
    docs = documents(rng, 10)
    write_run(runs, "current", "tiny-gpt2", "lora", 8, 42, 2.0, docs, rng)
    write_run(runs, "stale", "tiny-gpt2", "lora", 8, 42, 9.0, docs, rng)  # an older run id
    assert {r.run_id for r in discover_runs(runs)} == {"current", "stale"}  # no index: all
    write_index(runs, ["current"])
    assert [r.run_id for r in discover_runs(runs)] == ["current"]


def test_a_document_scored_on_other_text_in_one_run_is_left_out_of_the_pair_and_noted():
    """Two runs pair by document id only where each scored the same bytes (e.g. a document cut
    at another word boundary by an older evaluation): the others are left out, with a note."""
    from bashkir_peft.report.lm import difference_row

    def run(nll: list[float], n_bytes: list[int]) -> pd.DataFrame:
        return pd.DataFrame({"nll": nll, "bytes": n_bytes}, index=["d0", "d1", "d2"])

    a = [run([70.0, 80.0, 90.0], [100, 100, 100]), run([72.0, 78.0, 91.0], [100, 100, 100]),
         run([71.0, 79.0, 89.0], [100, 100, 100])]
    b = [run([60.0, 70.0, 80.0], [100, 100, 93]), run([61.0, 71.0, 79.0], [100, 100, 93]),
         run([62.0, 69.0, 81.0], [100, 100, 93])]
    row = difference_row(a, b, "lora r=8", "full", n_resamples=200, confidence=0.95, seed=0)
    assert row["n_documents"] == 2 and row["note"].startswith("1 document(s) left out")
    # d0 and d1 only: mean NLL 71 + 79 against 61 + 70, over 200 bytes
    assert row["difference"] == pytest.approx(((71 + 79) - (61 + 70)) / (200 * np.log(2)))
    same = difference_row(a, [run(f["nll"].tolist(), [100, 100, 100]) for f in b], "lora r=8", "full",
                          n_resamples=200, confidence=0.95, seed=0)
    assert same["n_documents"] == 3 and same["note"] is None
