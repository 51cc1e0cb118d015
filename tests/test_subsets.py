"""Balanced external sets: a budget keeps rows spread over the set (evenly spaced, or
stratified by SIB-200 topic), never its first rows; the record and the report say what the
subset is made of; FLORES-200's one-sentence-a-line files read as external sets."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import pytest

from bashkir_peft.config.external import ExternalSet
from bashkir_peft.data.external import load_external, read_lines
from bashkir_peft.data.sib200 import read_sib200_labels, read_sib200_split
from bashkir_peft.data.subsets import even_indices, stratified_allocation, stratified_indices
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.records import RECORDED, ExternalInfo
from bashkir_peft.yamlio import validate

ROOT = Path(__file__).resolve().parents[1]
SIB = ROOT / "../shared/eval/sib200"
FLORES = ROOT / "../shared/eval/flores200"


def test_even_indices_are_the_bin_midpoints():
    assert even_indices(10, 5) == [1, 3, 5, 7, 9]
    assert even_indices(204, 4) == [25, 76, 127, 178]  # floor((2i+1) * 204 / 8)
    assert even_indices(3, 5) == [0, 1, 2]  # a budget above the set keeps it whole
    with pytest.raises(DataError, match="at least one"):
        even_indices(10, 0)


def test_allocation_is_proportional_with_one_per_category_and_sums_to_the_budget():
    counts = {"a": 100, "b": 1, "c": 1}
    assert stratified_allocation(counts, 3) == {"a": 1, "b": 1, "c": 1}  # the floor of one each wins
    assert stratified_allocation(counts, 52) == {"a": 50, "b": 1, "c": 1}
    assert stratified_allocation({"a": 6, "b": 4}, 5) == {"a": 3, "b": 2}
    assert stratified_allocation({"a": 1, "b": 3}, 1) == {"a": 0, "b": 1}  # below one per category: proportional


@pytest.mark.parametrize("n", [7, 8, 10, 20, 30, 50])
def test_sib200_subsets_cover_all_seven_topics_deterministically_and_in_parallel(n):
    bak = read_sib200_split(SIB / "bak_Cyrl", "test")
    assert bak["category"].iloc[:51].nunique() == 1  # why the first rows are wrong: one topic
    rows = stratified_indices(bak["category"].tolist(), n)
    assert rows == sorted(set(rows)) and len(rows) == n
    assert rows == stratified_indices(bak["category"].tolist(), n)  # deterministic, no seed
    counts = Counter(bak["category"].iloc[rows])
    assert set(counts) == set(read_sib200_labels(SIB / "bak_Cyrl")) and len(counts) == 7
    # proportional: no topic more than one sentence away from its share (the floor of 1 aside)
    share = bak["category"].value_counts() / len(bak) * n
    assert all(abs(counts[c] - max(1.0, share[c])) < 1.0 + 1e-9 for c in counts)
    sides = [load_external(ExternalSet(name=f"s-{lang}", format="sib200", path=str(SIB / lang), max_documents=n))
             for lang in ("bak_Cyrl", "eng_Latn", "rus_Cyrl")]
    assert sides[0].ids == sides[1].ids == sides[2].ids == [str(i) for i in bak["index_id"].iloc[rows]]
    assert sides[0].info["selection"] == "stratified"
    assert sides[0].info["composition"] == dict(Counter(bak["category"].iloc[rows]))
    assert sum(sides[0].info["composition"].values()) == n


def test_flores_lines_read_evenly_and_the_record_keeps_what_was_scored(tmp_path):
    path = tmp_path / "x.devtest.gz"
    path.write_bytes(gzip.compress(b" one \n\ntwo\nthree\nfour\nfive\n"))
    texts, ids = read_lines(path)
    assert texts == ["one", "two", "three", "four", "five"] and ids == ["0", "2", "3", "4", "5"]
    docs = load_external(ExternalSet(name="x", format="lines", path=str(path), max_documents=2))
    assert docs.ids == ["2", "4"] and docs.sources == ["x.devtest", "x.devtest"]  # rows 1 and 3 of the five
    assert docs.info["selection"] == "even" and docs.info["composition"] is None
    info = ExternalInfo.model_validate({**docs.info, "cleaning_settings": None}, context=RECORDED)
    assert info.documents == 2 and info.documents_read == 5
    bak = load_external(ExternalSet(name="flores-bak", format="lines", path=str(FLORES / "bak_Cyrl.devtest.gz"),
                                    max_documents=200))
    assert bak.info["documents_read"] == 1012 and len(bak.texts) == 200 and bak.ids[:2] == ["2", "7"]
    assert all(t == t.strip() and t for t in bak.texts)
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not readable as UTF-8 text"):
        read_lines(tmp_path / "bad.gz")


def test_first_rows_are_refused_for_new_sets_and_read_from_old_records():
    with pytest.raises(ConfigError, match="selection 'first'"):
        validate(ExternalSet, {"name": "x", "path": str(SIB / "eng_Latn"), "format": "sib200",
                               "selection": "first"}, "external")
    with pytest.raises(ConfigError, match="needs categories"):
        validate(ExternalSet, {"name": "x", "path": str(FLORES / "eng_Latn.devtest.gz"), "format": "lines",
                               "selection": "stratified"}, "external")
    assert ExternalSet(name="x", path=str(FLORES / "eng_Latn.devtest.gz"), format="lines").selection == "even"
    old = {"name": "sib200-eng", "path": "gone", "format": "sib200", "sib200_split": "test", "clean": False,
           "max_documents": 10, "resolved_path": "/x", "documents_read": 204, "documents": 10, "drops": {},
           "cleaning_settings": None, "fingerprint": "0" * 64}
    info = ExternalInfo.model_validate(old, context=RECORDED)  # a record from before the field
    assert info.selection == "first" and info.composition is None


def test_report_shows_each_subset_once_with_its_composition(tmp_path):
    import numpy as np

    from bashkir_peft.records import EvalData, EvalRecord, RunFiles, read_record, write_record
    from bashkir_peft.report.external_sets import external_sets_table
    from bashkir_peft.report.runs import discover_runs
    from report_synth import documents, write_run

    rng = np.random.default_rng(0)
    docs = documents(rng, 4)
    bak = load_external(ExternalSet(name="sib200-bak", format="sib200", path=str(SIB / "bak_Cyrl"), max_documents=10))
    info = ExternalInfo.model_validate({**bak.info, "cleaning_settings": None}, context=RECORDED)
    for name, method in (("m-base", "base"), ("m-full", "full")):
        d = write_run(tmp_path, name, "tiny-gpt2", method, None, None if method == "base" else 42, 2.0, docs, rng,
                      generate=False)
        rec = read_record(d / RunFiles.EVAL, EvalRecord)
        extra = {f"{p}/sib200-bak": e.model_copy(update={"split": "sib200-bak", "data": EvalData(
            data_dir=None, fingerprint=None, documents=10, external=info)})
            for p, e in (("rolling", rec.evaluations["rolling/test"]), ("paper", rec.evaluations["paper/test"]))}
        write_record(d / RunFiles.EVAL, rec.model_copy(update={"evaluations": {**rec.evaluations, **extra}}))
    table = external_sets_table(discover_runs(tmp_path))
    assert len(table) == 1  # one subset, scored by two runs under two protocols
    row = table.iloc[0]
    assert row["set"] == "sib200-bak" and row["selection"] == "stratified" and row["runs"] == 2
    assert row["documents"] == 10 and row["documents_read"] == 204 and row["categories"] == 7
    assert row["composition"].startswith("science/technology 3, travel 2")
    assert external_sets_table([]).empty
