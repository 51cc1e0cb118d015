"""A results bundle names no folder of the machine that ran its grid (issue 33): its records,
executed notebooks, tables and figures name the grid's folder ``runs/<grid>``, the repository
``.``, the folder beside it ``..`` and the home folder ``~``, and its cells, once extracted,
still check ``finished`` against their stage manifests, by SHA-256."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.cellstate import cell_state, left_out_on_purpose
from bashkir_peft.cli import main
from bashkir_peft.pagepaths import MACHINE_PATH
from bashkir_peft.records import CellRecord, GridFiles, RunFiles, read_record
from bashkir_peft.report.bundle import extract_bundles
from bashkir_peft.settings import REPO_ROOT


@pytest.fixture(scope="module")
def bundled(smoke_grid, tmp_path_factory):
    """The session's smoke grid (tests/conftest.py) bundled through the CLI, and extracted."""
    out = tmp_path_factory.mktemp("bundled")
    archive = out / "smoke-results.tar.gz"
    assert main(["bundle", str(smoke_grid["grid_file"]), "--runs-dir", str(smoke_grid["runs"]), "--out", str(archive)]) == 0
    root = out / "extracted" / smoke_grid["root"].name
    extract_bundles([archive], root)
    return {**smoke_grid, "archive": archive, "extracted": root}


def _leaks(text: str, roots: set[str]) -> list[str]:
    """The folders of ``roots`` and the absolute machine paths (:data:`MACHINE_PATH`) in ``text``."""
    return [root for root in roots if root in text] + [m.group(0) for m in MACHINE_PATH.finditer(text)]


def test_no_file_of_a_bundle_names_a_folder_of_the_machine(bundled):
    roots = {str(bundled["tmp"]), str(bundled["runs"]), str(REPO_ROOT), str(Path.home()) + "/"}
    leaks, kinds = {}, set()
    with tarfile.open(bundled["archive"]) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            suffix = Path(member.name).suffix
            kinds.add(suffix)
            if suffix == ".parquet":
                df = pd.read_parquet(io.BytesIO(data))
                text = "\n".join(df[c].astype(str).str.cat(sep="\n") for c in df.columns)
            elif suffix == ".png":
                text = data.decode("latin-1")  # metadata chunks are Latin-1 text
            else:
                text = data.decode("utf-8")
            if _leaks(text, roots):
                leaks[member.name] = _leaks(text, roots)[:3]
    assert {".json", ".ipynb", ".parquet", ".csv"} <= kinds  # records, executed notebooks, tables
    assert not leaks, leaks


def test_records_name_folders_relative_to_the_runs_root_and_the_repository(bundled):
    run_dir, original = bundled["cells"]["lora"]
    assert original["data_dir"] == str(bundled["root"] / GridFiles.DATA)  # the runs folder keeps its absolute paths
    rec = read_record(bundled["extracted"] / run_dir.name / RunFiles.CELL, CellRecord)
    assert rec.data_dir == "runs/smoke/data"
    assert rec.stages["train"].notebook == f"runs/smoke/{run_dir.name}/notebooks/02_train.ipynb"
    assert rec.stages["train"].parameters["output_dir"] == f"runs/smoke/{run_dir.name}"
    assert rec.grid_file.endswith("/smoke.yaml") and not Path(rec.grid_file).is_absolute()  # a grid file in a temporary folder
    nb = json.loads((bundled["extracted"] / run_dir.name / RunFiles.NOTEBOOKS / "02_train.ipynb").read_text())
    assert nb["metadata"]["papermill"]["input_path"] == "./notebooks/02_train.ipynb"
    assert nb["metadata"]["papermill"]["output_path"] == f"runs/smoke/{run_dir.name}/notebooks/02_train.ipynb"


def test_extracted_cells_check_finished_by_sha256_after_their_records_were_rewritten(bundled):
    root = bundled["extracted"]
    finished = [d for d, rec in bundled["cells"].values() if rec["status"] == "finished"]
    assert len(finished) == 2
    for run_dir in finished:
        stamped = (run_dir / RunFiles.EVAL).read_text()
        assert str(bundled["root"]) in stamped  # a stamped record the bundle rewrote
        assert (root / run_dir.name / RunFiles.EVAL).read_text() != stamped
        state = cell_state(root, run_dir.name, checksums=True, left_out=left_out_on_purpose(root))
        assert (state.status, state.error) == ("finished", None)
