"""The smaller faults of issue 31, each with its test: ``seed: [true]`` is not seed 1; model
weights follow the umask (not safetensors' 0600); a full disk during training names the run
folder; the hidden temporary of a killed report never goes into a bundle; ``grid status`` on a
full disk still lists every cell; a cell another process held and finished since is finished,
not "held"."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys

import pytest
import yaml

from bashkir_peft.config.train import TrainParams
from bashkir_peft.records import RunFiles
from test_faults import REPO, cli, states
from test_train import TINY


def _smoke(tmp_path, **matrix):
    grid = yaml.safe_load((REPO / "params" / "grids" / "smoke.yaml").read_text())
    grid["matrix"] |= matrix
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


@pytest.mark.parametrize("axis", ["seed", "lora_r"])
def test_true_is_not_a_seed_or_a_rank(axis, corpus_dir, tmp_path, capfd):
    grid = _smoke(tmp_path, **{axis: [True]})
    code, _, err = cli(capfd, "grid", "run", grid, "--corpus", corpus_dir / "bashkir-demo.jsonl.gz",
                       "--runs-dir", tmp_path / "runs", "--dry-run")
    assert code == 2 and err.count("\n") == 1
    assert f"matrix.{axis}.0: Input should be a valid integer" in err


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=oct)
def test_weights_and_checkpoints_follow_the_umask(umask, data_dir, tmp_path):
    from bashkir_peft.train.run import run_training

    params = TrainParams(**(TINY | {"method": "lora", "max_steps": 1, "save_steps": 1, "eval_steps": 1,
                                    "data_dir": str(data_dir), "output_dir": str(tmp_path / "run")}))
    old = os.umask(umask)
    try:
        run_training(params)
    finally:
        os.umask(old)
    written = [p for d in (RunFiles.FINAL, RunFiles.CHECKPOINTS) for p in (tmp_path / "run" / d).rglob("*")
               if p.is_file()]
    assert any(p.name == "adapter_model.safetensors" for p in written)
    assert {p.relative_to(tmp_path): oct(stat.S_IMODE(p.stat().st_mode)) for p in written} == \
        {p.relative_to(tmp_path): oct(0o666 & ~umask) for p in written}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, corpus_dir):
    from test_train import make_data_dir

    return make_data_dir(corpus_dir, tmp_path_factory.mktemp("small-faults-data"))


def test_full_disk_during_training_names_the_run_folder(data_dir, tmp_path, monkeypatch):
    from bashkir_peft.train import run

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # as torch.save raises it: no file named

    monkeypatch.setattr(run, "_prepare_model", full)
    out = tmp_path / "run"
    params = TrainParams(**(TINY | {"data_dir": str(data_dir), "output_dir": str(out)}))
    with pytest.raises(OSError, match=rf"No space left on device \(writing under {out}\)") as err:
        run.run_training(params)
    assert err.value.errno == errno.ENOSPC
    record = json.loads((out / RunFiles.TRAIN).read_text())
    assert record["status"] == "failed" and str(out) in record["reason"]


def test_hidden_temporary_of_a_killed_report_is_not_bundled(tmp_path):
    from bashkir_peft.report.bundle import bundle_files

    figures = tmp_path / "report" / "figures"
    figures.mkdir(parents=True)
    (figures / "loss.png").write_bytes(b"\x89PNG")
    (figures / ".loss.k2j4h1.png").write_bytes(b"")  # atomic_path's temporary, left by a kill
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / RunFiles.CELL).write_text("{}")
    assert [p.as_posix() for p in bundle_files(tmp_path)] == ["report/figures/loss.png", f"run-1/{RunFiles.CELL}"]


def test_status_on_a_full_disk_still_lists_every_cell(tmp_path, capfd, monkeypatch):
    grid = _smoke(tmp_path)
    (tmp_path / "runs" / "smoke").mkdir(parents=True)

    def full(run):
        raise OSError(errno.ENOSPC, "No space left on device", str(run.root / "grid.json"))

    monkeypatch.setattr("bashkir_peft.cli.write_index", full)
    code, out, err = cli(capfd, "grid", "status", grid, "--runs-dir", tmp_path / "runs")
    assert code == 0 and "could not write the grid's index" in err and "No space left on device" in err
    assert out.count("<pending data>  not started") == 3  # base, lora, qlora


def test_cell_held_then_finished_by_another_process_is_finished(smoke_copy, capfd, monkeypatch):
    """The other process held the lora cell when this one's turn came, then finished it and let
    go: the run ends with it finished (skipped), exit 0, not "held ... not finished yet"."""
    from bashkir_peft.grid import runner

    lora, _ = smoke_copy["cells"]["lora"]
    real = runner.run_cell

    def held(run, p, **kwargs):
        return runner.CellResult(p, "locked") if p.run_id == lora.name else real(run, p, **kwargs)

    monkeypatch.setattr(runner, "run_cell", held)
    code, out, err = cli(capfd, *smoke_copy["args"])
    assert code == 0 and "held by another process" not in err
    lines = {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if ln.startswith("tiny-gpt2")}
    assert lines[lora.name] == "skipped"
    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert states(out)[lora.name] == "finished"


def test_status_of_a_grid_extracted_from_a_bundle_is_finished(smoke_copy, capfd, tmp_path):
    """A results bundle leaves the weights out on purpose: its extracted cells are finished for
    `grid status`, as for the report and the book, not corrupt."""
    from bashkir_peft.report.bundle import extract_bundles

    archive = tmp_path / "smoke-results.tar.gz"
    code, _, err = cli(capfd, "bundle", smoke_copy["grid_file"], "--runs-dir", smoke_copy["runs"], "--out", archive)
    assert code == 0, err
    extract_bundles([archive], tmp_path / "extracted" / "smoke")
    lora = smoke_copy["cells"]["lora"][0].name
    assert not (tmp_path / "extracted" / "smoke" / lora / RunFiles.FINAL).exists()
    status = ["grid", "status", smoke_copy["grid_file"], "--runs-dir", tmp_path / "extracted",
              "--only", "method=base,lora", "--only", "label=none"]
    code, out, _ = cli(capfd, *status)
    assert code == 0 and set(states(out).values()) == {"finished"} and lora in states(out)


def test_book_whose_report_kernel_died_leaves_no_stale_site(smoke_copy, capfd, tmp_path, monkeypatch):
    """Not only a failed build: a report kernel that dies (any error) removes the site of older results."""
    from bashkir_peft.book import copy_sources

    book = copy_sources(tmp_path / "book")
    site = book / "_build" / "html"
    site.mkdir(parents=True)
    (site / "index.html").write_text("old numbers")

    def died(*args, **kwargs):
        raise RuntimeError("Kernel died before replying to kernel_info")

    monkeypatch.setattr("bashkir_peft.book.execute_report", died)
    code, _, err = cli(capfd, "book", smoke_copy["grid_file"], "--runs-dir", smoke_copy["runs"], "--book-dir", book)
    assert code == 1 and "Kernel died" in err and not site.exists()


def test_staging_folders_of_killed_builds_are_removed(tmp_path):
    from bashkir_peft.book import STAGING_PREFIX, remove_orphaned_staging

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    build = tmp_path / "_build"
    for pid in (int(dead.stdout), os.getpid()):
        (build / f"{STAGING_PREFIX}{pid}" / "_build").mkdir(parents=True)
    assert remove_orphaned_staging(tmp_path) == [f"{STAGING_PREFIX}{int(dead.stdout)}"]
    assert [d.name for d in build.iterdir()] == [f"{STAGING_PREFIX}{os.getpid()}"]  # a live build's stays
