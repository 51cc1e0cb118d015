"""Shared test setup: offline tokenizers, thread budget, GPU marker, the shared data folder."""

from __future__ import annotations

import os
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
