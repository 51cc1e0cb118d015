"""Two cells that score different sentences never share a run id: a capped external set that
names no ``selection`` hashes the selection it gets (the default), so it shares its id with the
grid that spells that default and not with one that keeps other rows; a set scored whole is
hashed as written (its sentences do not depend on the selection)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bashkir_peft.config.external import ExternalSet, with_default_selection
from bashkir_peft.config.grid import expand, load_grid
from bashkir_peft.grid.runids import make_run_id

REPO = Path(__file__).resolve().parents[1]
SIB = {"name": "sib200-eng", "format": "sib200", "path": "../shared/eval/sib200/eng_Latn", "sib200_split": "test"}
FLORES = {"name": "flores-bak", "format": "lines", "path": "../shared/eval/flores200/bak_Cyrl.devtest.gz"}


def _ids(tmp_path: Path, name: str, sets: list[dict]) -> dict[str, str]:
    """slug -> run id of the cells of a small grid whose evaluation scores ``sets``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "g", "default_source": "a test grid", "matrix": {"model": ["tiny-gpt2"], "method": ["base", "lora"], "lora_r": [8], "seed": [42]},
        "evaluate": {"max_documents": 3, "external_sets": sets}}), encoding="utf-8")
    return {c.slug: make_run_id(c.slug, c.axes(), c.params, "fingerprint", "revision") for c in expand(load_grid(path))}


def test_a_capped_set_hashes_the_selection_it_gets(tmp_path):
    unset = _ids(tmp_path, "unset", [{**SIB, "max_documents": 10}, {**FLORES, "max_documents": 20}])
    spelled = _ids(tmp_path, "spelled", [{**SIB, "max_documents": 10, "selection": "stratified"},
                                         {**FLORES, "max_documents": 20, "selection": "even"}])
    other = _ids(tmp_path, "other", [{**SIB, "max_documents": 10, "selection": "even"},
                                     {**FLORES, "max_documents": 20, "selection": "even"}])
    assert len(unset) == 2
    assert unset == spelled  # the same sentences: the same run ids
    assert all(unset[s] != other[s] for s in unset)  # other SIB-200 sentences: other ids
    # the default spelled out is the one the evaluation itself validates to
    for entry in (SIB, FLORES):
        capped = {**entry, "max_documents": 5}
        assert with_default_selection(capped)["selection"] == ExternalSet.model_validate(capped).selection


def test_a_set_scored_whole_is_hashed_as_written(tmp_path):
    assert with_default_selection(SIB) is SIB and with_default_selection(FLORES) is FLORES
    whole = _ids(tmp_path, "whole", [SIB])
    assert whole != _ids(tmp_path, "whole-spelled", [{**SIB, "selection": "stratified"}])  # as written: unchanged ids


def test_which_shipped_grids_change_run_ids():
    """Only cpu-vocab caps a set without naming its selection: its cells (all of them
    evaluate) get new run ids; every other shipped grid hashes what it hashed before."""
    changed = set()
    for path in sorted((REPO / "params" / "grids").glob("*.yaml")):
        spec = load_grid(path).spec
        blocks = [spec.evaluate, *(getattr(x, "evaluate", None) or {} for x in [*spec.overrides, *spec.include])]
        if any(with_default_selection(s) != s for block in blocks for s in block.get("external_sets", [])):
            changed.add(path.stem)
    assert changed == {"cpu-vocab"}
