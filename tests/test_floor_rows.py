"""The n-gram floors as reference rows of the language-model tables (headline summary, every
run) and as reference lines in the figures of bits per byte: the floor's own numbers, on the
protocols and splits of the rows beside them only, never a "nan" on a page."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.report import cost, lm
from bashkir_peft.report.build import ReportResult
from bashkir_peft.report.figures import floor_lines, metrics_by_method, pyplot
from bashkir_peft.report.floors import BIGRAM_FLOOR, BYTE_FLOOR, FLOOR_LABELS, floor_reference, floors_table
from bashkir_peft.report.runs import discover_runs
from bashkir_peft.report.views import format_headline, per_run_table
from report_synth import documents, write_run


@pytest.fixture(scope="module")
def scored(tmp_path_factory, corpus_dir):
    """A base and a LoRA run of tiny-gpt2 scored (rolling and paper) on the first three test
    documents of a data folder whose training split is 40 corpus documents; their floors."""
    root = tmp_path_factory.mktemp("floor-rows")
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 44)]
    frame = lambda ts, prefix: pd.DataFrame({"id": [f"{prefix}{i:03d}" for i in range(len(ts))],  # noqa: E731
                                             "source": "web", "text": ts})
    data = root / "data"
    write_presplit_folder(data, {"train": frame(texts[:40], "t"), "validation": frame(texts[40:42], "v"),
                                 "test": frame(texts[40:44], "d")}, "fp", {"kind": "fixture", "location": "texts"})
    rng = np.random.default_rng(0)
    docs = documents(rng, 3)
    for name, method in (("m-base", "base"), ("m-lora", "lora")):
        write_run(root / "runs", name, "tiny-gpt2", method, 8 if method == "lora" else None,
                  None if method == "base" else 42, 2.0, docs, rng, generate=False)
    runs = discover_runs(root / "runs")
    return runs, floors_table(runs, data)


def test_floor_reference_keeps_the_wanted_pairs_only(scored):
    _, floors = scored
    ref = floor_reference(floors, [("rolling", "test"), ("paper", "test")])
    # paper has no floor: only the rolling rows, byte model first, each with the floors table's number
    assert list(ref["method_label"]) == [FLOOR_LABELS[BYTE_FLOOR], FLOOR_LABELS[BIGRAM_FLOOR]]
    assert list(ref["model"]) == ["", "tiny-gpt2"] and set(ref["protocol"]) == {"rolling"}
    by = floors.set_index("floor")["bits_per_byte"]
    assert list(ref["bits_per_byte"]) == [by[BYTE_FLOOR], by[BIGRAM_FLOOR]]
    assert floor_reference(floors, [("goldfish", "flores-bak")]).empty
    assert floor_reference(None, [("rolling", "test")]).empty


def test_headline_table_has_the_floors_of_its_pairs(scored):
    runs, floors = scored
    summary = lm.summary_table(lm.metrics_table(runs))
    table = format_headline(summary, floors)
    assert list(table["method"][:len(summary)]) == list(summary["method_label"])  # the runs first, unchanged
    rows = table[table["method"].str.startswith("floor: ")]
    assert len(rows) == 2 and set(zip(rows["protocol"], rows["split"])) == {("rolling", "test")}
    by = floors.set_index("floor")["bits_per_byte"]
    assert list(rows["bits per byte"]) == [f"{by[BYTE_FLOOR]:.3f}", f"{by[BIGRAM_FLOOR]:.3f}"]
    assert list(rows["model"]) == ["–", "tiny-gpt2"]
    assert not table.astype(str).apply(lambda c: c.str.contains("nan", case=False)).any().any()
    # the headline rows of one protocol get that protocol's floors only (paper: none)
    assert len(format_headline(summary[summary["protocol"] == "paper"], floors)) == len(summary) // 2
    assert len(format_headline(summary)) == len(summary)


def test_per_run_table_ends_with_the_floors(scored):
    runs, floors = scored
    metrics = lm.metrics_table(runs)
    quality = cost.quality_cost_table(cost.runs_table(runs), metrics, "rolling", "test")
    result = ReportResult(grid="synth", runs_dir=None, out_dir=None, runs=runs, protocol="rolling",
                          tables={"quality_cost": quality, "floors": floors})
    table = per_run_table(result)
    assert list(table["run_id"]) == ["m-base", "m-lora", "", ""]
    by = floors.set_index("floor")["bits_per_byte"]
    floor_rows = table.iloc[2:]
    assert list(floor_rows["method"]) == [FLOOR_LABELS[BYTE_FLOOR], FLOOR_LABELS[BIGRAM_FLOOR]]
    assert list(floor_rows["bits_per_byte"]) == [by[BYTE_FLOOR], by[BIGRAM_FLOOR]]
    assert floor_rows["perplexity"].isna().all()


def test_floor_lines_in_a_bar_chart_by_model(scored, tmp_path):
    runs, floors = scored
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
    assert [t.get_text() for t in ax.get_legend().texts] == list(ref["method_label"])
    plt.close(fig)
    # the headline figure draws them (and still writes its file)
    path = metrics_by_method(lm.metrics_table(runs), tmp_path / "m.png", "rolling", "test", ref)
    assert path is not None and path.stat().st_size > 0
