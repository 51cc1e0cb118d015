"""FLORES-200 devtest sides in the report: Tatar reads as transfer (a related language never
trained on), English and Russian as forgetting, each against the base model on the same
sentences (under the Goldfish protocol where that is how a side was scored)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bashkir_peft.records import EVAL_DOCUMENT_COLUMNS, RunFiles
from bashkir_peft.report.comparisons import FORGETTING_ROLE, TRANSFER_ROLE, comparisons_table
from bashkir_peft.report.findings import _comparison_sentences
from bashkir_peft.report.runs import discover_runs
from report_synth import documents, write_run


def _add_set(run_dir: Path, name: str, source: str, bpb: float, nbytes: np.ndarray, protocol: str) -> None:
    """Append an external set's per-document rows (nll = bpb * ln2 * bytes exactly)."""
    path = run_dir / RunFiles.EVAL_DOCUMENTS
    rows = pd.DataFrame({"protocol": protocol, "split": name, "id": [str(i) for i in range(len(nbytes))],
                         "source": source, "nll": bpb * math.log(2) * nbytes, "tokens": 10, "bytes": nbytes,
                         "words": 3, "separator_nll": 0.0, "separator_tokens": 0})
    pd.concat([pd.read_parquet(path), rows], ignore_index=True)[list(EVAL_DOCUMENT_COLUMNS)].to_parquet(path)


def test_tatar_is_transfer_english_is_forgetting(tmp_path):
    rng = np.random.default_rng(0)
    docs = documents(rng, 6)
    nbytes = rng.integers(50, 200, size=40)
    # bits per byte on Tatar and English: full fine-tuning gains 0.5 on Tatar, loses 0.3 on English
    runs = {"base": (3.0, 1.0), "full-42": (2.5, 1.3), "full-123": (2.5, 1.3), "full-2024": (2.5, 1.3)}
    for name, (tat, eng) in runs.items():
        method, _, seed = name.partition("-")
        d = write_run(tmp_path, f"m-{name}", "tiny-gpt2", method, None, int(seed) if seed else None, 2.0, docs, rng,
                      generate=False)
        _add_set(d, "flores-tat", "tat_Cyrl.devtest", tat, nbytes, "goldfish")  # as the CPU grids score it
        _add_set(d, "flores-eng", "eng_Latn.devtest", eng, nbytes, "rolling")
    table = comparisons_table(discover_runs(tmp_path), None, protocol="rolling", n_resamples=200)
    tat = table[table["split"] == "flores-tat (goldfish)"].iloc[0]  # not scored under rolling: named so
    eng = table[table["split"] == "flores-eng"].iloc[0]
    assert tat["role"] == TRANSFER_ROLE and eng["role"] == FORGETTING_ROLE
    assert (tat["a"], tat["b"]) == ("full", "base") and tat["difference"] == pytest.approx(-0.5)
    assert eng["difference"] == pytest.approx(0.3) and tat["n_documents"] == 40
    text = " ".join(_comparison_sentences(table, 0.95))
    assert ("**Transfer, Tatar (FLORES-200 devtest)** (exploratory). Against the base model on the same 40 Tatar "
            "sentences") in text
    assert "full -0.500 bits per byte [-0.500, -0.500] (transfer; Holm-adjusted p < 0.001)" in text
    assert "**Forgetting, English (FLORES-200 devtest)** (exploratory)." in text and "(forgotten;" in text


def _add_goldfish_entry(run_dir: Path, side: str, nll: float, documents: int, truncated: int) -> None:
    """Add a ``goldfish/flores-<side>`` entry to a run's eval.json (a copy of its test entry
    with the FLORES set's provenance and the given sums)."""
    from bashkir_peft.records import EvalData, EvalRecord, ExternalInfo, read_record, write_record

    rec = read_record(run_dir / RunFiles.EVAL, EvalRecord)
    base = rec.evaluations["rolling/test"]
    info = ExternalInfo(name=f"flores-{side[:3]}", path=f"../shared/eval/flores200/{side}.devtest.gz", format="lines",
                        selection="even", max_documents=documents, resolved_path=f"/x/flores200/{side}.devtest.gz",
                        documents_read=1012, documents=documents, drops={}, cleaning_settings=None, composition=None,
                        fingerprint="f" * 64)
    entry = base.model_copy(update={
        "protocol": "goldfish", "split": info.name, "truncated": truncated,
        "metrics": base.metrics.model_copy(update={"protocol": "goldfish", "nll": nll, "documents": documents}),
        "data": EvalData(data_dir=None, fingerprint=None, documents=documents, external=info)})
    write_record(run_dir / RunFiles.EVAL, rec.model_copy(update={
        "evaluations": {**rec.evaluations, f"goldfish/{info.name}": entry}}))


def test_beside_published_models(tmp_path):
    from bashkir_peft.report.published import PUBLISHED_BITS_PER_SENTENCE, published_table

    rng = np.random.default_rng(0)
    docs = documents(rng, 4)
    for name, method, seed in (("m-lora", "lora", 42), ("m-base", "base", None)):
        d = write_run(tmp_path, name, "smollm2-135m", method, 8 if method == "lora" else None, seed, 2.0, docs, rng,
                      generate=False)
        # 10 sentences, 3,000 bits in all on Bashkir: 300 bits a sentence (nll in nats)
        _add_goldfish_entry(d, "bak_Cyrl", 3000 * math.log(2) * (1 if method == "base" else 0.8), 10, 1)
        _add_goldfish_entry(d, "tat_Cyrl", 2500 * math.log(2), 10, 0)
    table = published_table(discover_runs(tmp_path))
    ours = table[table["kind"] == "ours"]
    assert ours["label"].tolist() == ["base", "lora r=8 s42"]  # the base model first
    assert ours["bak_Cyrl"].tolist() == pytest.approx([300.0, 240.0]) and ours["tat_Cyrl"].iloc[0] == pytest.approx(250)
    assert ours["eng_Latn"].isna().all() and ours["truncated"].tolist() == [1, 1]
    assert ours["sentences"].iloc[0] == "bak 10, tat 10"
    pub = table[table["kind"] == "published"].set_index("model")
    assert len(pub) == len(PUBLISHED_BITS_PER_SENTENCE) and pub.loc["XGLM-7.5B", "bak_Cyrl"] == 272.19
    assert pub["source"].str.contains("split unconfirmed").all()
    assert (published_table([])["kind"] == "published").all()  # the scale, even without a run
