"""Provenance of Hub models: the resolved commit goes into the records and the run id;
models on disk (tiny, GGUF-converted, local folders) keep their content-hash revision, so
the run ids of the CPU demo and smoke grids do not change."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from bashkir_peft.grid.runids import make_run_id
from bashkir_peft.models.loading import resolve_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding openai-community/gpt2 at COMMIT (config only)."""
    repo = tmp_path / "models--openai-community--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "snapshots" / COMMIT / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path


def test_hub_model_revision_is_the_resolved_commit(hub_cache):
    resolved = resolve_model("gpt2")  # registry entry, revision null (unpinned)
    assert resolved.source == "hub" and resolved.revision == COMMIT
    assert resolved.record()["revision"] == COMMIT
    assert resolve_model("openai-community/gpt2").revision == COMMIT  # a bare Hub id too
    axes = {"model": "gpt2", "method": "lora"}
    assert make_run_id("c", axes, {}, "fp", COMMIT) != make_run_id("c", axes, {}, "fp", "unpinned")


def test_hub_model_not_cached_offline_stays_unpinned(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_model("gpt2").revision == "unpinned"


@pytest.mark.parametrize("name", ["tiny-gpt2", "smollm2-135m"])
def test_models_on_disk_keep_their_content_revision(name, hub_cache):
    """The CPU demo (smollm2-135m, GGUF) and smoke (tiny-gpt2) grids' models: the revision
    (and so the run id) is the folder's content hash, untouched by the Hub cache."""
    resolved = resolve_model(name)
    assert resolved.source in ("tiny", "gguf") and resolved.revision.startswith("local:")
    assert resolved.revision == resolve_model(resolved.location).revision  # same as the folder itself
