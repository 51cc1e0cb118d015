"""Every input a stage will read is read when the grid is planned (issue 31): a malformed
external test set and a missing SIB-200 folder of the downstream task stop ``grid run
--dry-run`` with one line naming the file, before any data preparation or training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from test_faults import REPO, cli


def _grid(tmp_path: Path, **changes) -> Path:
    grid = yaml.safe_load((REPO / "params" / "grids" / "smoke.yaml").read_text())
    for section, values in changes.items():
        grid[section] |= values
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def _dry_run(capfd, grid: Path, corpus_dir: Path, tmp_path: Path):
    return cli(capfd, "grid", "run", grid, "--corpus", corpus_dir / "bashkir-demo.jsonl.gz",
               "--runs-dir", tmp_path / "runs", "--dry-run", "--no-progress")


def test_two_column_sib200_row_is_refused_by_the_dry_run(shared_dir, corpus_dir, tmp_path, capfd):
    sib = tmp_path / "eng_Latn"
    shutil.copytree(shared_dir / "eval" / "sib200" / "eng_Latn", sib)
    with open(sib / "test.tsv", "a", encoding="utf-8") as f:
        f.write("9999\tscience/technology\n")  # a row of two columns
    lines = (sib / "test.tsv").read_text().count("\n")
    external = [{"name": "sib200-eng", "format": "sib200", "path": str(sib), "sib200_split": "test",
                 "max_documents": 4}]
    code, out, err = _dry_run(capfd, _grid(tmp_path, evaluate={"external_sets": external}), corpus_dir, tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert f"test.tsv:{lines}: 2 fields, expected 3" in err and "evaluate." in err
    assert not (tmp_path / "runs").exists()  # nothing prepared


def test_missing_downstream_folder_is_refused_by_the_dry_run(corpus_dir, tmp_path, capfd):
    missing = tmp_path / "no-such-sib200"
    code, out, err = _dry_run(capfd, _grid(tmp_path, downstream={"sib200_dir": str(missing)}), corpus_dir, tmp_path)
    assert code == 2 and err.count("\n") == 1, err
    assert str(missing) in err and "downstream" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("section", ["evaluate", "downstream"])
def test_good_inputs_pass_and_each_is_read_once(section, tmp_path):
    from bashkir_peft.config.grid import load_grid
    from bashkir_peft.grid.inputs import check_inputs
    from bashkir_peft.grid.runner import plan

    run = plan(load_grid(_grid(tmp_path)), None, runs_root=tmp_path / "runs", need_corpus=False)
    units = [(p.cell.slug, u) for p in run.cells for u in run.units(p) if u.stage == section]
    assert len(units) > 1  # several cells read the same input
    assert check_inputs(units) == 1
