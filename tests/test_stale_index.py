"""One source of truth for a grid's cells (issue 31): ``report``, ``book`` and ``bundle`` compute
the cells from the grid file and the prepared data as ``grid run`` does, so a run of earlier
parameters never enters their tables, whether the index ``grid.json`` was written before the
grid file changed or was deleted."""

from __future__ import annotations

import json
import tarfile

import pandas as pd
import yaml

from bashkir_peft.records import GridFiles, RunFiles
from test_faults import cli


def _changed_grid(smoke_grid, tmp_path):
    """The smoke grid with another learning rate, same name: the trained cells get new run ids
    and their finished folders become runs of earlier parameters."""
    grid = yaml.safe_load(smoke_grid["grid_file"].read_text())
    grid["train"]["learning_rate"] = 1e-3
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def _texts(folder):
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()
                     and p.suffix in (".csv", ".md", ".json", ".ipynb", ".html", ".yml"))


def test_changed_grid_or_deleted_index_never_reports_a_stale_run(smoke_copy, capfd, tmp_path):
    grid_file = _changed_grid(smoke_copy, tmp_path)
    root = smoke_copy["root"]
    old_lora = smoke_copy["cells"]["lora"][0].name
    base = smoke_copy["cells"]["base"][0].name
    assert json.loads((root / GridFiles.INDEX).read_text())["cells"]  # the index of the earlier parameters
    report = ["report", grid_file, "--runs-dir", smoke_copy["runs"]]

    for deleted in (False, True):
        if deleted:
            (root / GridFiles.INDEX).unlink()
        code, out, err = cli(capfd, *report)
        assert code == 0, err
        assert "1 finished, 3 failed or unfinished" in out  # base; lora, qlora and badtarget not started
        failures = pd.read_csv(root / "report" / "tables" / "failures.csv")
        assert set(failures["status"]) == {"not started"} and old_lora not in set(failures["run_id"])
        tables = _texts(root / "report" / "tables")
        assert base in tables and old_lora not in tables

    from bashkir_peft.book import copy_sources

    (root / GridFiles.INDEX).unlink()
    book = copy_sources(tmp_path / "book")
    code, _, err = cli(capfd, "book", grid_file, "--runs-dir", smoke_copy["runs"], "--book-dir", book, "--no-build")
    assert code == 0, err
    generated = _texts(book / "generated")
    assert base in generated and old_lora not in generated
    assert "(1 of 4 runs finished)" in (book / "generated" / "built_from.md").read_text()

    (root / GridFiles.INDEX).unlink()
    archive = tmp_path / "smoke-results.tar.gz"
    code, _, err = cli(capfd, "bundle", grid_file, "--runs-dir", smoke_copy["runs"], "--out", archive)
    assert code == 0, err
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile(f"smoke/{GridFiles.INDEX}").read())
    assert old_lora not in {c["run_id"] for c in index["cells"]}
    assert (root / old_lora / RunFiles.TRAIN).is_file()  # the earlier run is kept on disk, only never read
