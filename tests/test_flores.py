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
    assert "**Transfer, Tatar (FLORES-200 devtest).** Against the base model on the same 40 Tatar sentences" in text
    assert "full -0.500 bits per byte [-0.500, -0.500] (transfer)" in text
    assert "**Forgetting, English (FLORES-200 devtest).**" in text and "(forgotten)" in text
