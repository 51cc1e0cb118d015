"""Synthetic run records (the team contract's file layout) for the report and book tests.

Per-document NLL is drawn so that each method has a known true bits-per-byte; the
evaluation record's metrics are the corpus-level sums of the per-document table, as the
evaluation stage computes them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

# (model, method, lora_r, seed, true bits per byte)
CELLS = [
    ("tiny-gpt2", "base", None, None, 3.00),
    ("tiny-gpt2", "full", None, 42, 2.00),
    ("tiny-gpt2", "full", None, 123, 2.10),
    ("tiny-gpt2", "lora", 8, 42, 2.50),
    ("tiny-gpt2", "lora", 8, 123, 2.40),
    ("tiny-gpt2", "lora", 8, 2024, 2.45),
]
N_DOCS = 60


def documents(rng: np.random.Generator, n: int = N_DOCS) -> pd.DataFrame:
    n_bytes = rng.integers(200, 2000, size=n)
    return pd.DataFrame({"doc_id": [f"d{i:03d}" for i in range(n)], "bytes": n_bytes,
                         "tokens": (n_bytes / 3).astype(int), "words": (n_bytes / 8).astype(int),
                         "source": np.where(np.arange(n) % 2 == 0, "news", "wiki")})


def write_run(root: Path, run_id: str, model: str, method: str, lora_r, seed, bpb: float,
              docs: pd.DataFrame, rng: np.random.Generator, *, generate: bool = True) -> Path:
    d = root / run_id
    d.mkdir(parents=True)
    params = {"model": model, "method": method, "seed": seed, "block_size": 128}
    if lora_r is not None:
        params.update(lora_r=lora_r, lora_alpha=2 * lora_r)
    if method != "base":
        trainable = {"full": 1_000_000, "lora": 4096 * lora_r if lora_r else 0}.get(method, 1000)
        (d / "train.json").write_text(json.dumps({
            "status": "finished", "params": params, "model": {"name": model, "revision": "x"},
            "trainable_params": trainable, "total_params": 1_000_000,
            "cost": {"wall_time_s": 10.0 + trainable / 1e5, "peak_rss_mib": 500.0, "peak_gpu_mib": None,
                     "tokens_per_s": 1000.0 - trainable / 1e4}, "losses": [{"step": 1, "loss": 3.0}]}))
    # Per-document NLL (nats): true bpb * ln2 * bytes, with document-level noise. The paper
    # protocol scores the same documents 10 % worse (any other number would do).
    nll = bpb * math.log(2) * docs["bytes"].to_numpy() * rng.normal(1.0, 0.05, size=len(docs))
    rolling = docs.rename(columns={"doc_id": "id"}).assign(nll=nll, protocol="rolling", split="test")
    paper = rolling.assign(nll=1.1 * nll, protocol="paper")
    pd.concat([rolling, paper]).to_parquet(d / "eval_documents.parquet")

    def block(frame, protocol, source="all"):
        return {"protocol": protocol, "split": "test", "source": source, "documents": len(frame),
                "nll": frame["nll"].sum(), "tokens": int(frame["tokens"].sum()),
                "bytes": int(frame["bytes"].sum()), "words": int(frame["words"].sum()),
                "perplexity": math.exp(frame["nll"].sum() / frame["tokens"].sum()),
                "bits_per_byte": frame["nll"].sum() / (math.log(2) * frame["bytes"].sum()),
                "word_perplexity": math.exp(frame["nll"].sum() / frame["words"].sum())}

    evaluations = {f"{proto}/test": {"status": "finished", "protocol": proto, "split": "test",
                                     "metrics": block(frame, proto),
                                     "by_source": {s: block(g, proto, s) for s, g in frame.groupby("source")},
                                     "params": {"model": model if method == "base" else None,
                                                "run_dir": None if method == "base" else str(d)}}
                   for proto, frame in (("rolling", rolling), ("paper", paper))}
    (d / "eval.json").write_text(json.dumps({
        "stage": "evaluate", "status": "finished", "method": method, "model": {"name": model},
        "model_name": model, "run_dir": None if method == "base" else str(d), "evaluations": evaluations}))
    (d / "grid_cell.json").write_text(json.dumps({
        "status": "finished", "run_id": run_id, "grid": "synth",
        "params": {k: v for k, v in params.items() if k in ("model", "method", "lora_r", "seed")},
        "error": None}))
    if generate:
        bak = 0.9 if method != "full" else 0.6
        (d / "generate.json").write_text(json.dumps({
            "status": "finished", "params": {"model": model, "seed": 1234},  # a decoding seed
            "summary": {"n": 10, "code_switch_rate": 1 - bak, "distinct_2": 0.8,
                        "language_shares": {"bak": bak, "rus": 0.05, "eng": 0.95 - bak, "other": 0.0}},
            "reference_summary": {"n": 10, "code_switch_rate": 0.0,
                                  "language_shares": {"bak": 1.0, "rus": 0.0, "eng": 0.0, "other": 0.0}}}))
    (d / "notebooks").mkdir()
    (d / "notebooks" / "03_evaluate.ipynb").write_text(json.dumps(notebook("# Evaluation\n", "Run " + run_id)))
    return d


def notebook(*markdown: str) -> dict:
    """A small executed notebook (one markdown cell, one code cell with its output)."""
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": list(markdown)},
                    {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": ["print(1)"],
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]}],
          "metadata": {"kernelspec": {"name": "bashkir-peft", "display_name": "Python (bashkir-peft)",
                                      "language": "python"}}, "nbformat": 4, "nbformat_minor": 4}


def make_grid(root: Path, seed: int = 0, *, failed: bool = True) -> Path:
    """Write the synthetic grid into ``root`` (the runs folder) and return it."""
    rng = np.random.default_rng(seed)
    docs = documents(rng)
    # The grid runner's data stage: the data-prep output (not a run) and its executed notebook.
    (root / "data").mkdir(parents=True)
    (root / "data" / "manifest.json").write_text(json.dumps({"fingerprint": "abc", "counts": {}}))
    (root / "01_data_prep.ipynb").write_text(json.dumps(notebook("# Data preparation\n", "kept 60 documents")))
    (root / ".replaced" / "old").mkdir(parents=True)
    (root / ".replaced" / "old" / "01_data_prep.ipynb").write_text(json.dumps(notebook("# Old\n", "moved aside")))
    for i, (model, method, r, s, bpb) in enumerate(CELLS):
        write_run(root, f"run{i:02d}-{method}", model, method, r, s, bpb, docs, rng)
    if failed:
        d = root / "run99-qlora"
        d.mkdir()
        reason = "ValueError: Target modules {'nope'} not found in the base model"
        (d / "train.json").write_text(json.dumps({
            "status": "failed", "reason": reason,
            "params": {"model": "tiny-gpt2", "method": "qlora", "lora_r": 8, "seed": 42}}))
        (d / "grid_cell.json").write_text(json.dumps({
            "status": "failed", "run_id": d.name, "params": {"model": "tiny-gpt2", "method": "qlora",
                                                             "lora_r": 8, "seed": 42},
            "error": f"train: {reason}", "failure": {"stage": "train", "cell_index": 3}}))
        # A cell still running (no evaluation yet): neither a result nor a failure.
        d = root / "run98-lora"
        d.mkdir()
        (d / "grid_cell.json").write_text(json.dumps({
            "status": "running", "params": {"model": "tiny-gpt2", "method": "lora", "lora_r": 16, "seed": 42}}))
    return root
