"""Shared test setup: offline tokenizers, thread budget, GPU marker, the shared data folder,
and ONE finished smoke grid per test session (``smoke_grid``; ``smoke_copy`` for a test that
changes it)."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BASHKIR_PEFT_SHARED", REPO.parent / "shared"))

os.environ.setdefault("BASHKIR_PEFT_TOKENIZERS", str(SHARED / "tokenizers"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _threads():
    from bashkir_peft.runtime import configure_threads

    configure_threads()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared folder (corpus, tokenizers); skip nothing: it must exist."""
    assert SHARED.is_dir(), f"shared folder not found at {SHARED} (set BASHKIR_PEFT_SHARED)"
    return SHARED


@pytest.fixture(scope="session")
def corpus_dir(shared_dir) -> Path:
    return shared_dir / "corpus"


# Small parameters of every lesson (lessons/*.ipynb): tiny models, a few sentences, a few steps.
LESSONS_SMALL = {
    "01_lora_from_scratch": {"model": "tiny-llama"},
    "02_nf4_by_hand": {"model": "tiny-llama", "gaussian_shape": [64, 64]},
    "03_why_bashkir_costs_more": {"models": ["gpt2", "mistral-7b"], "n_sentences": 5},
    "04_reading_the_metrics": {"model": "tiny-llama", "other_tokenizer": "gpt2", "n_sentences": 3},
    "05_a_short_fine_tune": {"model": "tiny-llama", "max_steps": 3, "block_size": 16, "eval_every": 2, "n_dev": 2,
                             "max_new_tokens": 4},
}


@pytest.fixture(scope="session")
def executed_lessons(tmp_path_factory):
    """Every lesson executed once with :data:`LESSONS_SMALL` (the lesson tests read them, the
    end-to-end book shows them): ``(folder, {lesson: {wall_s, cpu_s}})``."""
    from bashkir_peft.lessons import execute_lessons

    out = tmp_path_factory.mktemp("lessons")
    return out, execute_lessons(out, LESSONS_SMALL)


SMOKE_DOCS = 60  # documents of the demo corpus: enough for a 3-way split after filtering


def _cells(root: Path) -> dict[str, tuple[Path, dict]]:
    """label (else method) -> (run folder, cell record) of a grid folder."""
    cells = {}
    for rec_path in root.glob("*/grid_cell.json"):
        rec = json.loads(rec_path.read_text())
        cells[rec["params"]["label"] or rec["params"]["method"]] = (rec_path.parent, rec)
    return cells


@pytest.fixture(scope="session")
def smoke_grid(tmp_path_factory, corpus_dir):
    """The smoke grid run once per test session through the CLI (real notebooks 01-04 on the
    tiny model and the first 60 documents of the demo corpus): its zero-shot and LoRA cells,
    plus a cell that fails at run time (LoRA target module ``q_proj``, which GPT-2 does not
    have; label ``badtarget``). Read it; a test that changes it works on ``smoke_copy``."""
    import yaml

    from bashkir_peft.cli import main

    tmp = tmp_path_factory.mktemp("smoke")
    corpus = tmp / "corpus.jsonl.gz"
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(corpus, "wt", encoding="utf-8") as dst:
        dst.writelines(itertools.islice(src, SMOKE_DOCS))
    grid = yaml.safe_load((REPO / "params" / "grids" / "smoke.yaml").read_text())
    grid["include"] = [{"model": "tiny-gpt2", "method": "lora", "label": "badtarget",
                        "train": {"target_modules": ["q_proj"]}}]
    grid_file = tmp / "smoke.yaml"
    grid_file.write_text(yaml.safe_dump(grid, sort_keys=False))
    runs = tmp / "runs"
    # zero-shot and LoRA cells (QLoRA's CPU path is tested by the training tests; each cell
    # here costs kernel starts), plus the failing cell
    args = ["grid", "run", str(grid_file), "--corpus", str(corpus), "--runs-dir", str(runs), "--no-progress",
            "--only", "method=base,lora"]
    first = main(args)
    root = runs / grid["name"]
    return {"tmp": tmp, "args": args, "first": first, "root": root, "cells": _cells(root),
            "grid_file": grid_file, "runs": runs, "corpus": corpus}


@pytest.fixture
def smoke_copy(smoke_grid, tmp_path):
    """A copy of the session's smoke grid (files, times and all) in ``tmp_path``: its
    ``runs``, ``root``, ``cells``, and ``args`` (``grid run`` of the finished cells, without
    the failing one) pointing at the copy."""
    runs = tmp_path / "runs"
    shutil.copytree(smoke_grid["runs"], runs, symlinks=True)
    root = runs / smoke_grid["root"].name
    grid = ["grid", "run", str(smoke_grid["grid_file"]), "--runs-dir", str(runs), "--no-progress",
            "--only", "method=base,lora", "--only", "label=none"]
    return {**smoke_grid, "runs": runs, "root": root, "cells": _cells(root),
            "args": grid + ["--corpus", str(smoke_grid["corpus"])],
            "status": ["grid", "status", str(smoke_grid["grid_file"]), "--runs-dir", str(runs), "--only", "method=base,lora",
                       "--only", "label=none"]}


@pytest.fixture
def hold_lock():
    """``with hold_lock(path): ...`` holds the file lock ``path`` (a cell's lock) from another
    process for the block, as a second grid run would."""

    @contextlib.contextmanager
    def hold(path: Path):
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
            "print('held', flush=True); time.sleep(60)"), str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            yield
        finally:
            holder.kill()
            holder.wait()

    return hold
