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
