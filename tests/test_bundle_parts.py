"""A grid run in parts (one machine session each, `--only`), bundled per part: the book reads
the union of the parts' bundles, and the union reports what the same cells run together do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.config.report import ReportParams
from bashkir_peft.errors import DataError
from bashkir_peft.records import GridFiles, RunFiles
from bashkir_peft.report.build import build_report
from bashkir_peft.report.bundle import bundle_archives, extract_bundles, write_bundle
from report_synth import make_grid


def _part(whole: Path, dest: Path, keep: set[str]) -> Path:
    """The runs folder a part would leave: only the run folders of ``keep``; the index lists
    every cell of the grid, the others "not started" (as the runner writes them)."""
    shutil.copytree(whole, dest)
    index = json.loads((dest / GridFiles.INDEX).read_text())
    for cell in index["cells"]:
        if cell["run_id"] not in keep:
            shutil.rmtree(dest / cell["run_id"])
            cell.update(status="not started", error=None)
    (dest / GridFiles.INDEX).write_text(json.dumps(index))
    shutil.rmtree(dest / GridFiles.REPORT, ignore_errors=True)
    return dest


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    whole = make_grid(root / "whole" / "synth")
    run_ids = sorted(c.parent.name for c in whole.glob(f"*/{RunFiles.CELL}"))
    first, second = set(run_ids[: len(run_ids) // 2]), set(run_ids[len(run_ids) // 2:])
    results = root / "results" / "synth"
    for i, keep in enumerate((first, second), 1):
        part = _part(whole, root / f"part{i}" / "synth", keep)
        write_bundle(part, results / f"synth-part{i}-results.tar.gz", "synth")
    return {"root": root, "whole": whole, "results": results, "run_ids": run_ids}


def test_the_union_of_the_parts_reports_what_the_cells_run_together_report(parts, tmp_path):
    union = tmp_path / "union" / "synth"
    assert extract_bundles(bundle_archives(parts["results"]), union) == "synth"
    assert sorted(c.parent.name for c in union.glob(f"*/{RunFiles.CELL}")) == parts["run_ids"]
    index = json.loads((union / GridFiles.INDEX).read_text())
    whole_index = json.loads((parts["whole"] / GridFiles.INDEX).read_text())
    assert [(c["run_id"], c["status"]) for c in index["cells"]] == [(c["run_id"], c["status"]) for c in whole_index["cells"]]
    together = build_report(ReportParams(grid="synth", runs_dir=str(parts["whole"]), output_dir=str(tmp_path / "r1"), n_resamples=500))
    merged = build_report(ReportParams(grid="synth", runs_dir=str(union), output_dir=str(tmp_path / "r2"), n_resamples=500))
    assert set(merged.tables) == set(together.tables)
    compared = 0
    for name, df in together.tables.items():
        if "runs_dir" in df.columns or df.empty:
            continue
        pd.testing.assert_frame_equal(merged.tables[name].reset_index(drop=True), df.reset_index(drop=True), obj=name)
        compared += 1
    assert compared >= 8


def test_a_run_in_two_parts_with_different_files_is_refused(parts, tmp_path):
    clash = tmp_path / "clash"
    clash.mkdir()
    for archive in bundle_archives(parts["results"]):
        shutil.copy(archive, clash / archive.name)
    run = parts["run_ids"][0]
    other = _part(parts["whole"], tmp_path / "other" / "synth", {run})
    cell = other / run / RunFiles.CELL
    cell.write_text(cell.read_text().replace('"status"', '"status" ', 1))
    write_bundle(other, clash / "synth-part3-results.tar.gz", "synth")
    with pytest.raises(DataError, match=f"run {run} is in .* with different files"):
        extract_bundles(bundle_archives(clash), tmp_path / "out")


def test_bundles_of_two_grids_or_an_empty_folder_are_refused(parts, tmp_path):
    other = tmp_path / "b" / "other"
    shutil.copytree(parts["whole"], other)
    archive = tmp_path / "other-results.tar.gz"
    write_bundle(other, archive, "other")
    with pytest.raises(DataError, match="different grids"):
        extract_bundles([*bundle_archives(parts["results"]), archive], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no results bundle"):
        bundle_archives(tmp_path / "empty")


def test_a_part_bundled_before_the_grid_gained_a_cell_is_refused_with_the_remedy(parts, tmp_path):
    """Parts bundled from indexes that list different cells (a cell added to the grid between
    two parts) are not merged: the error says to bundle every part again."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    archives = bundle_archives(parts["results"])
    shutil.copy(archives[1], mixed / archives[1].name)
    older = _part(parts["whole"], tmp_path / "older" / "synth", set(parts["run_ids"][:1]))
    index = json.loads((older / GridFiles.INDEX).read_text())
    index["cells"] = index["cells"][:-1]  # the grid before its last cell was added
    (older / GridFiles.INDEX).write_text(json.dumps(index))
    write_bundle(older, mixed / "synth-part1-results.tar.gz", "synth")
    with pytest.raises(DataError, match="not parts of one grid run.*bundle every part again from its runs folder"):
        extract_bundles(bundle_archives(mixed), tmp_path / "out")


def test_a_part_s_bundle_takes_only_its_run_folders_and_the_grid_s_own_files(parts):
    """On a machine that ran several parts into one runs folder, a part's bundle (`bundle
    --tier`) holds that part's run folders and the grid's index and data, not the other parts'."""
    from bashkir_peft.report.bundle import bundle_files

    whole, run_ids = parts["whole"], parts["run_ids"]
    every = bundle_files(whole)
    one = bundle_files(whole, {run_ids[0]})
    runs_in = {rel.parts[0] for rel in one if rel.name == RunFiles.CELL}
    assert runs_in == {run_ids[0]}
    assert [rel for rel in one if rel.parts[0] not in run_ids] == [rel for rel in every if rel.parts[0] not in run_ids]
    assert GridFiles.INDEX in {rel.as_posix() for rel in one}
    assert bundle_files(whole, set(run_ids)) == every
