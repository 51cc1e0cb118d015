"""External test sets (a corpus or a SIB-200 side scored whole, under its own name), their
grid passes, and the report's forgetting table and figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.config.external import ExternalSet
from bashkir_peft.data.external import load_external
from bashkir_peft.data.sib200 import read_sib200_split
from bashkir_peft.data.subsets import stratified_indices
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.evaluate.run import run_evaluation
from bashkir_peft.records import EVAL_DOCUMENT_COLUMNS, RunFiles
from bashkir_peft.yamlio import validate
from report_synth import documents, write_run

SIB = "../shared/eval/sib200"


def _side(lang: str, **kw) -> ExternalSet:
    return ExternalSet(name=f"sib200-{lang[:3]}", format="sib200", path=f"{SIB}/{lang}", **kw)


def test_sib200_side_scored_whole_under_its_own_name_beside_a_split(tmp_path):
    from bashkir_peft.data.folder import write_presplit_folder

    data = tmp_path / "data"
    frame = pd.DataFrame({"id": ["a", "b"], "source": ["web", "web"], "text": ["Һаумыһығыҙ, дуҫтар.", "Тау."]})
    write_presplit_folder(data, {"train": frame, "validation": frame, "test": frame}, "fp", {"kind": "fixture", "location": "texts"})
    out = tmp_path / "out"
    common = dict(model="tiny-gpt2", output_dir=str(out), max_length=64, batch_size=4, num_threads=1)
    run_evaluation(EvalParams(**common, data_dir=str(data), max_documents=1), progress=False)
    # a base model needs no data folder for an external set; max_documents is the split's, not the set's
    entry = run_evaluation(EvalParams(**common, max_documents=1, external=_side("eng_Latn", max_documents=5).model_dump()),
                           progress=False)
    assert entry.split == "sib200-eng" and entry.metrics.documents == 5
    ext = entry.data.external
    assert ext.documents_read == 204 and ext.documents == 5 and ext.drops == {}
    assert ext.resolved_path.endswith("eng_Latn") and len(ext.fingerprint) == 64

    rec = json.loads((out / RunFiles.EVAL).read_text())
    assert set(rec["evaluations"]) == {"rolling/test", "rolling/sib200-eng"}
    docs = pd.read_parquet(out / RunFiles.EVAL_DOCUMENTS)
    side = docs[docs["split"] == "sib200-eng"]
    raw = read_sib200_split(Path(__file__).resolve().parents[1] / SIB / "eng_Latn", "test")
    raw = raw.iloc[stratified_indices(raw["category"].tolist(), 5)]  # spread over the topics, not the head
    assert raw["category"].nunique() == 5
    assert side["id"].tolist() == [str(i) for i in raw["index_id"]]  # the same ids in every language
    assert (side["source"] == "eng_Latn").all()
    assert side["bytes"].tolist() == [len(t.encode()) for t in raw["text"]]  # raw: not cleaned
    table = pd.read_csv(out / RunFiles.EVAL_METRICS)
    assert set(table["split"]) == {"test", "sib200-eng"}


def test_cleaning_on_request_reports_its_drop_counts():
    bak = load_external(_side("bak_Cyrl", clean=True), {"min_chars": 200, "langid_min_letters": 20})
    drops = bak.info["drops"]
    assert bak.info["documents_read"] == 204 == bak.info["documents"] + sum(drops.values())
    assert drops["too_short"] > 102  # the grid's min_chars alone drops most sentences
    assert load_external(_side("bak_Cyrl", clean=True), {"min_chars": 1, "langid_min_letters": 20}) \
        .info["documents"] > 190
    with pytest.raises(DataError, match=r"no document left.*'not_bashkir': 204"):
        load_external(_side("eng_Latn", clean=True))  # the Bashkir filter drops every English one


def test_external_set_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="names a data-prep split"):
        validate(ExternalSet, {"name": "test", "path": f"{SIB}/eng_Latn", "format": "sib200"}, "external")
    with pytest.raises(ConfigError, match="no such file or folder"):
        validate(ExternalSet, {"name": "x", "path": str(tmp_path / "missing.jsonl")}, "external")
    with pytest.raises(DataError, match="test.tsv: not found"):
        load_external(ExternalSet(name="x", format="sib200", path=str(tmp_path)))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "1", "text": "Ике һүҙ."}) + "\n", encoding="utf-8")
    docs = load_external(ExternalSet(name="mine", path=str(corpus)))
    assert docs.texts == ["Ике һүҙ."] and docs.ids == ["1"]


def test_grid_external_sets_become_one_evaluation_pass_each():
    from bashkir_peft.config.grid import expand, load_grid
    from bashkir_peft.executor import default_notebooks_dir, notebook_parameters
    from bashkir_peft.grid.runner import GridRun, Planned

    grid = load_grid(Path(__file__).resolve().parents[1] / "params/grids/cpu-demo.yaml")
    run = GridRun(grid, None, Path("/nonexistent"), default_notebooks_dir())
    base = next(c for c in expand(grid) if c.method == "base")
    run.declared = {s: notebook_parameters(run.notebook(s)) for s in base.stages}
    units = [(u.name, u.parameters) for u in run.units(Planned(base, "rev")) if u.stage == "evaluate"]
    assert [u for u, _ in units] == [f"evaluate.{i}" for i in range(1, 7)]
    assert units[0][1].get("protocol") == "rolling" and "external" not in units[0][1]
    ext = [p["external"] for _, p in units[1:]]
    assert [e["name"] for e in ext] == ["sib200-bak", "sib200-eng", "sib200-rus", "flores-bak", "flores-tat"]
    # an entry's protocols: one pass per protocol, the key itself not passed on to the set
    assert [p.get("protocol") for _, p in units[1:]] == ["rolling"] * 3 + ["goldfish"] * 2
    assert all("protocols" not in e for e in ext)
    from bashkir_peft.grid.runner import _external_passes

    with pytest.raises(ConfigError, match="'x': protocols must be a non-empty list of protocol names"):
        _external_passes({"name": "x", "protocols": "goldfish"}, "grid")
    assert all("external_sets" not in p for _, p in units)
    assert all(EvalParams.model_validate({k: v for k, v in p.items() if k in EvalParams.model_fields}).external
               for _, p in units[1:])


def _add_sides(run_dir: Path, bpb: dict[str, float], ids: list[str], nbytes: np.ndarray) -> None:
    """Append SIB-200 side rows (nll = bpb * ln2 * bytes exactly) to a run's per-document table."""
    path = run_dir / RunFiles.EVAL_DOCUMENTS
    rows = [pd.DataFrame({"protocol": "rolling", "split": f"sib200-{lang[:3]}", "id": ids, "source": lang,
                          "nll": b * math.log(2) * nbytes, "tokens": 10, "bytes": nbytes, "words": 3,
                          "separator_nll": 0.0, "separator_tokens": 0})
            for lang, b in bpb.items()]
    pd.concat([pd.read_parquet(path), *rows], ignore_index=True)[list(EVAL_DOCUMENT_COLUMNS)].to_parquet(path)


def test_forgetting_table_and_figure(tmp_path):
    from bashkir_peft.report.figures import gained_vs_forgotten
    from bashkir_peft.report.forgetting import forgetting_summary, forgetting_table
    from bashkir_peft.report.runs import discover_runs

    rng = np.random.default_rng(0)
    docs = documents(rng, 10)
    ids, nbytes = [str(i) for i in range(20)], rng.integers(50, 200, size=20)
    sides = {  # bits per byte on the bak, eng, rus sides
        "base": (3.0, 1.0, 1.5), "full-42": (2.0, 1.6, 2.0), "full-123": (2.2, 1.4, 2.1), "lora-42": (2.6, 1.1, 1.6)}
    for name, (bak, eng, rus) in sides.items():
        method, _, seed = name.partition("-")
        d = write_run(tmp_path, f"m-{name}", "tiny-gpt2", method, 8 if method == "lora" else None,
                      int(seed) if seed else None, 2.0, docs, rng, generate=False)
        # the base model is scored on all 20 sentences, the runs on the first 15: compared on those
        n = 20 if method == "base" else 15
        _add_sides(d, {"bak_Cyrl": bak, "eng_Latn": eng, "rus_Cyrl": rus}, ids[:n], nbytes[:n])
    table = forgetting_table(discover_runs(tmp_path)).set_index("run_id")
    assert set(table.index) == {"m-full-42", "m-full-123", "m-lora-42"}
    row = table.loc["m-full-42"]
    assert row["bashkir_gain"] == pytest.approx(1.0) and row["english_loss"] == pytest.approx(0.6)
    assert row["russian_loss"] == pytest.approx(0.5) and row["english_documents"] == 15
    assert table.loc["m-lora-42", "english_loss"] == pytest.approx(0.1)
    summary = forgetting_summary(forgetting_table(discover_runs(tmp_path))).set_index("method_label")
    assert summary.loc["full", "n"] == 2 and summary.loc["full", "bashkir_gain_mean"] == pytest.approx(0.9)
    assert summary.loc["full", "english_loss_mean"] == pytest.approx(0.5)
    assert math.isnan(summary.loc["lora r=8", "english_loss_std"])
    assert gained_vs_forgotten(table.reset_index(), tmp_path / "f.png").stat().st_size > 0
    assert gained_vs_forgotten(table.iloc[:0], tmp_path / "g.png") is None
