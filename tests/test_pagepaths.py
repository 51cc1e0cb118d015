"""Pages never name a folder of the machine that built them (bashkir_peft.pagepaths)."""

from __future__ import annotations

from pathlib import Path

from bashkir_peft.pagepaths import machine_folders, scrub, shown_path
from bashkir_peft.settings import REPO_ROOT


def test_folders_of_the_machine_become_names_a_reader_can_use(tmp_path, monkeypatch):
    monkeypatch.setenv("BASHKIR_PEFT_RUNS", str(tmp_path / "runs"))
    runs_dir = tmp_path / "elsewhere" / "cpu-demo"
    folders = machine_folders(runs_dir)
    text = (f'run_dir = "{runs_dir}/smollm2-lora-s42"\n'
            f"data_dir='{tmp_path / 'runs'}/other/data', tokenizers: {REPO_ROOT.parent}/shared/tokenizers\n"
            f"notebook {REPO_ROOT}/notebooks/02_train.ipynb; cache {Path.home()}/.cache/bashkir-peft\n"
            f"another: {runs_dir}-copy/x")
    assert scrub(text, folders).splitlines() == [
        'run_dir = "runs/cpu-demo/smollm2-lora-s42"',
        "data_dir='runs/other/data', tokenizers: ../shared/tokenizers",
        "notebook ./notebooks/02_train.ipynb; cache ~/.cache/bashkir-peft",
        "another: …/cpu-demo-copy/x",  # a folder is replaced whole, never as a prefix of another
    ]
    assert all(len(Path(folder).parts) >= 2 for folder, _ in folders)  # never "/" itself


def test_shown_path_is_relative_to_the_runs_root_or_names_the_last_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("BASHKIR_PEFT_RUNS", str(tmp_path / "runs"))
    assert shown_path(tmp_path / "runs" / "cpu-demo" / "report") == "runs/cpu-demo/report"
    assert shown_path(tmp_path / "x" / "extracted" / "smoke") == "…/extracted/smoke"
    assert shown_path("runs/smoke") == "runs/smoke"


def test_other_absolute_paths_keep_their_last_two_parts_and_urls_stay():
    text = ('grid = "/tmp/pytest-of-ci/pytest-3/smoke0/smoke.yaml"; corpus /home/ana/corpora/bak.jsonl.gz\n'
            "https://github.com/owner/bashkir-peft/blob/main/lessons/x.ipynb, total/count/2, runs/smoke/a")
    assert scrub(text, []).splitlines() == [
        'grid = "…/smoke0/smoke.yaml"; corpus …/corpora/bak.jsonl.gz',
        "https://github.com/owner/bashkir-peft/blob/main/lessons/x.ipynb, total/count/2, runs/smoke/a"]
