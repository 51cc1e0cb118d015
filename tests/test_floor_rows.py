"""The n-gram floors as reference rows of the language-model tables (headline summary, every
run) and as reference lines in the figures of bits per byte: the floor's own numbers, on the
protocols and splits of the rows beside them only, never a "nan" on a page; and a run with an
adapted tokenizer gets a bigram over its own tokens, counted once per tokenizer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from bashkir_peft.config.tokenizer import TokenizerAdaptation
from bashkir_peft.data.fertility import load_profile_tokenizer
from bashkir_peft.data.vocab import adapt_tokenizer
from bashkir_peft.evaluate.ngram import TokenBigram
from bashkir_peft.records import CellRecord, RunFiles, read_record, write_record
from bashkir_peft.report import cost, lm
from bashkir_peft.report import floors as floors_module
from bashkir_peft.report.build import ReportResult
from bashkir_peft.report.figures import floor_lines, metrics_by_method, pyplot
from bashkir_peft.report.floors import BIGRAM_FLOOR, BYTE_FLOOR, FLOOR_LABELS, floor_reference, floors_table
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.views import format_headline, per_run_table
from report_synth import documents, write_corpus_data, write_run

ADAPTED = "k40"
ADAPTATION = TokenizerAdaptation(new_tokens=40, bpe_vocab_size=600)
ADAPTED_LABEL = f"{FLOOR_LABELS[BIGRAM_FLOOR]} (tok={ADAPTED})"


def _set_tokenizer(run_dir, name: str) -> None:
    cell = read_record(run_dir / RunFiles.CELL, CellRecord)
    write_record(run_dir / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(
        update={"tokenizer": name})}))


@pytest.fixture(scope="module")
def scored(tmp_path_factory, corpus_dir):
    """Runs of tiny-gpt2 scored (rolling and paper) on the first three test documents of a data
    folder whose training split is 40 corpus documents, and their floors: a base run, a LoRA
    run, two LoRA runs on an adapted tokenizer ``k40`` (saved in the first one's folder only), and
    one on an adaptation no folder holds (``gone``)."""
    root = tmp_path_factory.mktemp("floor-rows")
    data, texts = write_corpus_data(root / "data", corpus_dir)
    rng = np.random.default_rng(0)
    docs = documents(rng, 3)
    for name, method in (("m-base", "base"), ("m-lora", "lora"), ("m-tok1", "lora"), ("m-tok2", "lora"),
                         ("m-tok3", "lora")):
        write_run(root / "runs", name, "tiny-gpt2", method, 8 if method == "lora" else None,
                  None if method == "base" else 42, 2.0, docs, rng, generate=False)
    base, _ = load_profile_tokenizer("tiny-gpt2")
    adapt_tokenizer(data, base, ADAPTATION, out_dir=root / "runs" / "m-tok1" / RunFiles.TOKENIZER, sides={})
    for name, axis in (("m-tok1", ADAPTED), ("m-tok2", ADAPTED), ("m-tok3", "gone")):
        _set_tokenizer(root / "runs" / name, axis)
    runs = discover_runs(root / "runs")
    return runs, floors_table(runs, data), data, texts


def _by_tokenizer(floors: pd.DataFrame) -> pd.Series:
    """bits_per_byte of the floors table by tokenizer (``""``: the byte model)."""
    return floors.set_index("tokenizer")["bits_per_byte"]


def test_floor_reference_keeps_the_wanted_pairs_only(scored):
    floors = scored[1]
    ref = floor_reference(floors, [("rolling", "test"), ("paper", "test")])
    # paper has no floor: only the rolling rows, byte model first, each with the floors table's number
    assert list(ref["method_label"]) == [FLOOR_LABELS[BYTE_FLOOR], FLOOR_LABELS[BIGRAM_FLOOR], ADAPTED_LABEL]
    assert list(ref["model"]) == ["", "tiny-gpt2", "tiny-gpt2"] and set(ref["protocol"]) == {"rolling"}
    by = _by_tokenizer(floors)
    assert list(ref["bits_per_byte"]) == [by[""], by["base"], by[ADAPTED]]
    assert floor_reference(floors, [("goldfish", "flores-bak")]).empty
    assert floor_reference(None, [("rolling", "test")]).empty


def test_headline_table_has_the_floors_of_its_pairs(scored):
    runs, floors = scored[:2]
    summary = lm.summary_table(lm.metrics_table(runs))
    table = format_headline(summary, floors)
    assert list(table["method"][:len(summary)]) == list(summary["method_label"])  # the runs first, unchanged
    rows = table[table["method"].str.startswith("floor: ")]
    assert len(rows) == 3 and set(zip(rows["protocol"], rows["split"])) == {("rolling", "test")}
    by = _by_tokenizer(floors)
    assert list(rows["bits per byte"]) == [f"{by[k]:.3f}" for k in ("", "base", ADAPTED)]
    assert list(rows["model"]) == ["–", "tiny-gpt2", "tiny-gpt2"]
    assert not table.astype(str).apply(lambda c: c.str.contains("nan", case=False)).any().any()
    # the headline rows of one protocol get that protocol's floors only (paper: none)
    assert len(format_headline(summary[summary["protocol"] == "paper"], floors)) == len(summary) // 2
    assert len(format_headline(summary)) == len(summary)


def test_per_run_table_ends_with_the_floors(scored):
    runs, floors = scored[:2]
    metrics = lm.metrics_table(runs)
    quality = cost.quality_cost_table(cost.runs_table(runs), metrics, "rolling", "test")
    result = ReportResult(grid="synth", runs_dir=None, out_dir=None, runs=runs, protocol="rolling",
                          tables={"quality_cost": quality, "floors": floors})
    table = per_run_table(result)
    assert sorted(table["run_id"][:5]) == ["m-base", "m-lora", "m-tok1", "m-tok2", "m-tok3"]  # the runs first
    assert list(table["run_id"][5:]) == ["", "", ""]
    by = _by_tokenizer(floors)
    floor_rows = table.iloc[5:]
    assert list(floor_rows["method"]) == [FLOOR_LABELS[BYTE_FLOOR], FLOOR_LABELS[BIGRAM_FLOOR], ADAPTED_LABEL]
    assert list(floor_rows["bits_per_byte"]) == [by[""], by["base"], by[ADAPTED]]
    assert floor_rows["perplexity"].isna().all()


def test_floor_lines_in_a_bar_chart_by_model(scored, tmp_path):
    runs, floors = scored[:2]
    plt, _ = pyplot()
    ref = floor_reference(floors, [("rolling", "test")])
    fig, ax = plt.subplots()
    ax.bar(["other-model", "tiny-gpt2"], [1.0, 2.0])
    floor_lines(ax, ref, ["other-model", "tiny-gpt2"])
    byte_line = next(ln for ln in ax.get_lines() if ln.get_label() == FLOOR_LABELS[BYTE_FLOOR])
    assert byte_line.get_ydata()[0] == pytest.approx(ref["bits_per_byte"][0])  # across every bar
    bigram = next(c for c in ax.collections if c.get_label() == FLOOR_LABELS[BIGRAM_FLOOR])
    (x0, y0), (x1, y1) = bigram.get_segments()[0]
    assert (x0, x1) == pytest.approx((0.55, 1.45)) and y0 == y1 == pytest.approx(ref["bits_per_byte"][1])
    adapted = next(c for c in ax.collections if c.get_label() == ADAPTED_LABEL)
    assert adapted.get_segments()[0][0][1] == pytest.approx(ref["bits_per_byte"][2])
    assert adapted.get_linestyle() != bigram.get_linestyle()  # told apart from the base tokenizer's
    assert [t.get_text() for t in ax.get_legend().texts] == list(ref["method_label"])
    plt.close(fig)
    # the headline figure draws them (and still writes its file)
    path = metrics_by_method(lm.metrics_table(runs), tmp_path / "m.png", "rolling", "test", ref)
    assert path is not None and path.stat().st_size > 0


def test_adapted_tokenizer_runs_get_a_bigram_over_their_own_tokens(scored, monkeypatch):
    runs, floors, data, texts = scored
    rows = floors[floors["floor"] == BIGRAM_FLOOR]
    assert sorted(rows["tokenizer"]) == ["base", ADAPTED]  # "gone": no folder holds it, left out
    # the adapted bigram, direct: counted on the training split's adapted tokens, on the three scored documents
    tok = AutoTokenizer.from_pretrained(runs[0].path.parent / "m-tok1" / RunFiles.TOKENIZER)
    assert len(tok) > len(load_profile_tokenizer("tiny-gpt2")[0])
    lm_ = TokenBigram.fit(tok(texts[:40], add_special_tokens=False)["input_ids"], len(tok), tok.unk_token_id)
    test = texts[40:43]
    bits = sum(lm_.surprisals(ids).sum() for ids in tok(test, add_special_tokens=False)["input_ids"])
    by = _by_tokenizer(floors)
    assert by[ADAPTED] == pytest.approx(bits / sum(len(t.encode()) for t in test))
    assert by[ADAPTED] != pytest.approx(by["base"])
    # one bigram per tokenizer, however many runs share it (two runs on k40, two on the base tokenizer)
    fitted = []
    fit = TokenBigram.fit
    monkeypatch.setattr(floors_module.TokenBigram, "fit",
                        classmethod(lambda cls, ids, **kw: fitted.append(kw["vocab_size"]) or fit(ids, **kw)))
    floors_table(runs, data)
    assert sorted(fitted) == sorted([len(load_profile_tokenizer("tiny-gpt2")[0]), len(tok)])
