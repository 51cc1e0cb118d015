"""Faults and typos on a finished smoke grid: nothing finished is ever hidden, nothing wrong
is ever silent (issue 18).

Every test works on a copy of the session's one finished smoke grid (``smoke_copy``,
tests/conftest.py): corrupt a record, delete a run folder, delete the data folder, run a
wrong corpus over it, hold a cell from another process, kill the grid and its kernel
mid-training, break the report notebook... and asserts the state that ``grid status``,
``grid run`` and ``report`` each report, and that no finished result was lost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.cli import main
from bashkir_peft.errors import ConfigError, DataError
from bashkir_peft.records import RunFiles

REPO = Path(__file__).resolve().parents[1]
TCP_WARNING = "without encryption"


def cli(capfd, *args) -> tuple[int, str, str]:
    """Run the CLI in this process; its exit code, stdout and stderr (kernels' included)."""
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def states(out: str) -> dict[str, str]:
    """``run id -> state`` from the output of ``grid status``/``grid verify``."""
    return dict(re.findall(r"^(\S+-[0-9a-f]{12})  (not started|\S+)", out, re.M))


def report_failures(smoke, capfd) -> tuple[str, pd.DataFrame]:
    code, out, err = cli(capfd, "report", smoke["grid_file"], "--runs-dir", smoke["runs"])
    assert code == 0, err
    return out, pd.read_csv(smoke["root"] / "report" / "tables" / "failures.csv")


def stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_corrupt_train_record_is_corrupt_everywhere_and_training_reruns_with_the_stages_after_it(smoke_copy, capfd):
    """A truncated train.json: status and report say corrupt, verify fails, and `grid run`
    redoes training (under umask 077: the new record and weights are 0600), keeping the
    corrupt file in .replaced/, and the stages that read its model: evaluation, generation
    and downstream are rerun (issue 31), to the same results on this CPU."""
    run_dir, _ = smoke_copy["cells"]["lora"]
    rid = run_dir.name
    train = run_dir / RunFiles.TRAIN
    original = json.loads(train.read_text())
    train.write_text(train.read_text()[:200])
    others = {n: (run_dir / n).stat().st_mtime_ns for n in (RunFiles.EVAL, RunFiles.GENERATE, RunFiles.DOWNSTREAM,
                                                           "notebooks/03_evaluate.ipynb")}
    metrics = {k: v["metrics"] for k, v in json.loads((run_dir / RunFiles.EVAL).read_text())["evaluations"].items()}

    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert code == 0 and states(out)[rid] == "corrupt" and "train.json" in out
    code, out, _ = cli(capfd, *smoke_copy["status"][:1], "verify", *smoke_copy["status"][2:])
    assert code == 1 and states(out)[rid] == "corrupt"
    summary, failures = report_failures(smoke_copy, capfd)
    row = failures[failures["run_id"] == rid].iloc[0]
    assert row["status"] == "corrupt" and "train.json" in row["error"]
    assert "1 finished, 3 failed or unfinished" in summary  # base; lora corrupt, badtarget failed, qlora not run

    old = os.umask(0o077)
    try:
        code, out, err = cli(capfd, *smoke_copy["args"])
    finally:
        os.umask(old)
    assert code == 0, err
    assert TCP_WARNING not in err  # no warning that says nothing to the user on kernel start
    redone = json.loads(train.read_text())
    assert redone["status"] == "finished" and redone["losses"] == original["losses"]
    assert redone["final_eval"] == original["final_eval"]
    assert train.stat().st_mode & 0o777 == 0o600
    assert (run_dir / "final" / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o600
    for name, mtime in others.items():  # rerun: they read the redone training's model
        assert (run_dir / name).stat().st_mtime_ns != mtime, name
    redone = json.loads((run_dir / RunFiles.EVAL).read_text())
    assert redone["status"] == "finished" and {k: v["metrics"] for k, v in redone["evaluations"].items()} == metrics
    kept = list((smoke_copy["root"] / ".replaced").glob(f"{rid}-*/train.json"))
    assert len(kept) == 1 and len(kept[0].read_text()) == 200  # the corrupt file is kept, not deleted
    code, out, _ = cli(capfd, *smoke_copy["status"][:1], "verify", *smoke_copy["status"][2:])
    assert code == 0 and set(states(out).values()) == {"finished"}


def test_downstream_record_that_does_not_parse_is_corrupt_everywhere_and_only_its_stage_reruns(smoke_copy, capfd):
    """A flipped byte in downstream.json that keeps its size and time (so the stage's file manifest
    does not see it): the record does not parse, so status, verify and the report say corrupt,
    and `grid run` redoes the downstream stage only (the stage table lists its record)."""
    run_dir, _ = smoke_copy["cells"]["lora"]
    rid, record = run_dir.name, run_dir / RunFiles.DOWNSTREAM
    original = json.loads(record.read_text())
    st = record.stat()
    record.write_text(record.read_text().replace('"results"', '"resultz"', 1))
    os.utime(record, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert record.stat().st_size == st.st_size
    others = {n: (run_dir / n).stat().st_mtime_ns for n in (RunFiles.TRAIN, RunFiles.EVAL, RunFiles.GENERATE)}

    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert code == 0 and states(out)[rid] == "corrupt" and "downstream.json" in out and "field 'results'" in out
    code, out, _ = cli(capfd, *smoke_copy["status"][:1], "verify", *smoke_copy["status"][2:])
    assert code == 1 and states(out)[rid] == "corrupt"
    _, failures = report_failures(smoke_copy, capfd)
    row = failures[failures["run_id"] == rid].iloc[0]
    assert row["status"] == "corrupt" and "downstream.json" in row["error"]

    code, out, err = cli(capfd, *smoke_copy["args"])
    assert code == 0, err
    redone = json.loads(record.read_text())
    assert redone["results"] == original["results"]  # the same sentences, the same predictions
    assert {n: (run_dir / n).stat().st_mtime_ns for n in others} == others  # nothing else rerun
    code, out, _ = cli(capfd, *smoke_copy["status"][:1], "verify", *smoke_copy["status"][2:])
    assert code == 0 and set(states(out).values()) == {"finished"}


def test_deleted_run_folder_is_listed_by_status_and_report(smoke_copy, capfd, monkeypatch):
    """From the grid's folder, with relative paths (taken from the current folder): the
    report lists the cell whose run folder was deleted; `../` as a grid name is refused."""
    base, _ = smoke_copy["cells"]["base"]
    shutil.rmtree(base)
    monkeypatch.chdir(smoke_copy["runs"].parent)
    code, out, _ = cli(capfd, "grid", "status", smoke_copy["grid_file"], "--runs-dir", "runs", "--only", "label=none")
    assert states(out)[base.name] == "not started"
    code, out, err = cli(capfd, "report", smoke_copy["grid_file"], "--runs-dir", "runs", "--out-dir", "rep")
    assert code == 0, err
    failures = pd.read_csv(Path("rep") / "tables" / "failures.csv")
    row = failures[failures["run_id"] == base.name].iloc[0]
    assert row["status"] == "not started" and row["error"] == "no run folder"
    assert "1 finished, 3 failed or unfinished" in out  # lora; base gone, badtarget failed, qlora not run
    code, _, err = cli(capfd, "report", "../outside", "--runs-dir", "runs")
    assert code == 2 and err.count("\n") == 1 and "grid name '../outside'" in err


def test_deleted_data_folder_is_prepared_again_and_cells_stay(smoke_copy, capfd):
    data = smoke_copy["root"] / "data"
    manifest = json.loads((data / "manifest.json").read_text())
    shutil.rmtree(data)
    cells = {k: stamps(d) for k, (d, _) in smoke_copy["cells"].items() if k != "badtarget"}
    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert "data: altered or missing" in out and set(states(out).values()) == {"finished"}
    code, out, err = cli(capfd, *smoke_copy["args"])
    assert code == 0, err
    assert json.loads((data / "manifest.json").read_text())["fingerprint"] == manifest["fingerprint"]
    assert "2 skipped" in out  # same fingerprint: the finished cells stay valid
    assert {k: stamps(d) for k, (d, _) in smoke_copy["cells"].items() if k != "badtarget"} == cells
    code, out, _ = cli(capfd, *smoke_copy["status"][:1], "verify", *smoke_copy["status"][2:])
    assert code == 0 and "data:" not in out


def test_wrong_corpus_over_a_finished_grid_loses_nothing(smoke_copy, capfd, tmp_path):
    english = tmp_path / "english.jsonl"
    english.write_text("".join(json.dumps({"id": str(i), "text": "This is an English sentence, not Bashkir. " * 3})
                               + "\n" for i in range(5)))
    kept = {n: (smoke_copy["root"] / n).read_bytes() for n in ("data_prep.json", "01_data_prep.ipynb")}
    data = stamps(smoke_copy["root"] / "data")
    code, _, err = cli(capfd, *smoke_copy["args"][:-2], "--corpus", english)
    assert code == 1 and "data preparation failed" in err and "nothing left" in err
    assert {n: (smoke_copy["root"] / n).read_bytes() for n in kept} == kept  # replaced only on success
    assert stamps(smoke_copy["root"] / "data") == data
    attempt = json.loads((smoke_copy["root"] / "data_prep.attempt.json").read_text())
    assert attempt["status"] == "failed"
    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert set(states(out).values()) == {"finished"} and len(states(out)) == 2


def test_typo_in_a_papermill_parameter_fails_before_any_work(smoke_grid, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    from bashkir_peft.executor import execute

    out = tmp_path / "run"
    with pytest.raises(PapermillExecutionError) as err:
        execute(REPO / "notebooks" / "02_train.ipynb", tmp_path / "02.ipynb",
                {"model": "tiny-gpt2", "data_dir": str(smoke_grid["root"] / "data"), "output_dir": str(out),
                 "lerning_rate": 1e-4}, REPO)
    assert err.value.ename == "ConfigError"
    assert "unknown parameter 'lerning_rate' injected; did you mean 'learning_rate'?" in err.value.evalue
    assert not out.exists()  # before any work


def test_cell_held_by_another_process_makes_grid_run_fail(smoke_copy, capfd, hold_lock):
    lora, _ = smoke_copy["cells"]["lora"]
    with hold_lock(smoke_copy["root"] / ".locks" / f"{lora.name}.lock"):
        code, out, err = cli(capfd, *smoke_copy["args"])
        assert code == 1
        assert f"held by another process, not finished yet: {lora.name}" in err
        lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.startswith("tiny-gpt2")}
        assert lines[lora.name] == ["locked", "-"]
        assert lines[smoke_copy["cells"]["base"][0].name] == ["skipped", "-"]  # no old wall time
        code, out, _ = cli(capfd, *smoke_copy["status"])
        assert states(out)[lora.name] == "finished"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(smoke_copy, capfd, umask):
    from bashkir_peft.records import CellRecord, read_record, write_record

    old = os.umask(umask)
    try:
        report_failures(smoke_copy, capfd)
        run_dir, _ = smoke_copy["cells"]["base"]
        write_record(run_dir / "copy.json", read_record(run_dir / RunFiles.CELL, CellRecord))
    finally:
        os.umask(old)
    written = [run_dir / "copy.json", *(smoke_copy["root"] / "report").rglob("*.*")]
    assert any(p.suffix == ".png" for p in written) and any(p.suffix == ".parquet" for p in written)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in written} == {p.name: oct(0o666 & ~umask) for p in written}


def test_stale_record_is_stale_everywhere(smoke_copy, capfd):
    """A cell record whose identity no longer hashes to its run id (what it computes changed)."""
    base, rec = smoke_copy["cells"]["base"]
    rec["identity"]["params"]["evaluate"]["max_documents"] = 999
    (base / RunFiles.CELL).write_text(json.dumps(rec))
    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert states(out)[base.name] == "stale"
    _, failures = report_failures(smoke_copy, capfd)
    assert failures.set_index("run_id").loc[base.name, "status"] == "stale"
    code, out, _ = cli(capfd, *smoke_copy["args"], "--dry-run")
    assert f"{base.name}  " in out and "[stale]" in out


def test_duplicate_yaml_key_is_an_error_naming_key_and_line(tmp_path, capfd):
    grid = tmp_path / "dup.yaml"
    grid.write_text("name: dup\ntrain:\n  max_steps: 3\nmatrix:\n  model: [tiny-gpt2]\ntrain:\n  max_steps: 5\n")
    code, _, err = cli(capfd, "grid", "run", grid, "--corpus", grid)
    assert code == 2 and err.count("\n") == 1
    assert "duplicate key 'train' (first on line 2)" in err and "line 6" in err


def test_split_left_empty_is_refused_with_counts(corpus_dir, tmp_path):
    import gzip
    import itertools

    from bashkir_peft.config.data import DataPrepParams
    from bashkir_peft.data.prepare import prepare

    small = tmp_path / "small.jsonl.gz"
    with gzip.open(corpus_dir / "bashkir-demo.jsonl.gz", "rt", encoding="utf-8") as src, \
            gzip.open(small, "wt", encoding="utf-8") as dst:
        dst.writelines(itertools.islice(src, 2))
    params = DataPrepParams(corpus=str(small), output_dir=str(tmp_path / "data"), num_proc=1, min_chars=30,
                            tokenizers=[], langid_sample=None)
    with pytest.raises(DataError, match=r"would be empty \(train \d+, validation \d+, test \d+ of 2 documents"):
        prepare(params)
    assert not (tmp_path / "data").exists()


def test_corrupt_table_is_reported_and_unexpected_errors_are_one_line(smoke_copy, capfd, monkeypatch):
    lora, _ = smoke_copy["cells"]["lora"]
    (lora / RunFiles.EVAL_DOCUMENTS).write_bytes(b"not parquet")
    _, failures = report_failures(smoke_copy, capfd)
    row = failures.set_index("run_id").loc[lora.name]
    assert row["status"] == "corrupt" and "eval_documents.parquet" in row["error"]

    def boom(params):
        raise RuntimeError("something broke\nsecond line")

    with pytest.raises(ConfigError):  # with --debug, errors are raised as they are
        main(["--debug", "report", "../x"])
    monkeypatch.setattr("bashkir_peft.cli.build_report", boom)
    code, _, err = cli(capfd, "report", smoke_copy["grid_file"], "--runs-dir", smoke_copy["runs"])
    assert code == 1 and err == "error: RuntimeError: something broke (--debug shows the traceback)\n"
    with pytest.raises(RuntimeError):
        main(["--debug", "report", str(smoke_copy["grid_file"]), "--runs-dir", str(smoke_copy["runs"])])


def test_failed_book_build_leaves_no_stale_site(smoke_copy, capfd, tmp_path):
    from bashkir_peft.book import copy_sources

    book = copy_sources(tmp_path / "book")
    site = book / "_build" / "html"
    site.mkdir(parents=True)
    (site / "index.html").write_text("old numbers")
    for d, _ in smoke_copy["cells"].values():
        shutil.rmtree(d)  # nothing to report: the report notebook fails
    code, _, err = cli(capfd, "book", smoke_copy["grid_file"], "--runs-dir", smoke_copy["runs"], "--book-dir", book)
    assert code == 1 and "05_report.ipynb failed to execute" in err
    assert "showed older results and was removed" in err and not site.exists()


def test_book_site_holds_only_the_pages_of_its_last_build(tmp_path):
    from bashkir_peft.book import jupyter_book_build

    book = tmp_path / "b"
    book.mkdir()
    (book / "_config.yml").write_text((REPO / "book" / "_config.yml").read_text())
    shutil.copytree(REPO / "book" / "_ext", book / "_ext")  # the config's local extension
    (book / "intro.md").write_text("# Intro\n")
    (book / "oldrun.md").write_text("# A run no longer in the grid\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: oldrun\n")
    index = jupyter_book_build(book, book / "_toc.yml")
    assert (index.parent / "oldrun.html").is_file()
    (book / "oldrun.md").unlink()
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    index = jupyter_book_build(book, book / "_toc.yml")
    assert index.is_file() and not (index.parent / "oldrun.html").exists()


# Started in the kernels of the killed grid (IPython runs its profile's startup files): SIGKILL
# the grid process and the kernel as training is about to take its third step.
KILL_STARTUP = textwrap.dedent("""
    import os, signal
    import transformers

    _step = transformers.Trainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step == 2:
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        return _step(self, *args, **kwargs)

    transformers.Trainer.training_step = training_step
""")


def test_killed_grid_resumes_to_bit_identical_results(smoke_grid, smoke_copy, capfd, tmp_path):
    """kill -9 of the grid and its kernel mid-training (after 2 of 3 steps), then a rerun:
    losses, metrics, weights, per-document table and generations equal the uninterrupted
    run's; the cost counts the killed attempt too."""
    ref, _ = smoke_grid["cells"]["lora"]
    run_dir = smoke_copy["root"] / ref.name
    shutil.rmtree(run_dir)
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-kill.py").write_text(KILL_STARTUP)
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    args = ["grid", "run", str(smoke_grid["grid_file"]), "--runs-dir", str(smoke_copy["runs"]), "--no-progress",
            "--corpus", str(smoke_grid["corpus"]), "--only", "method=lora", "--only", "label=none"]
    killed = subprocess.run([sys.executable, "-m", "bashkir_peft.cli", *args], env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    train = json.loads((run_dir / RunFiles.TRAIN).read_text())
    assert train["status"] == "running" and train["sessions"][0]["cost"]["wall_time_s"] > 0
    code, out, _ = cli(capfd, *smoke_copy["status"])
    assert states(out)[ref.name] == "interrupted"

    code, _, err = cli(capfd, *args)
    assert code == 0, err
    got, want = (json.loads((d / RunFiles.TRAIN).read_text()) for d in (run_dir, ref))
    assert got["losses"] == want["losses"] and got["final_eval"] == want["final_eval"]
    assert len(got["sessions"]) == 2
    assert got["cost"]["wall_time_s"] == pytest.approx(sum(s["cost"]["wall_time_s"] for s in got["sessions"]))
    assert got["cost"]["wall_time_s"] > got["sessions"][1]["cost"]["wall_time_s"]  # the killed attempt counts
    for name in ("final/adapter_model.safetensors", RunFiles.EVAL_DOCUMENTS, RunFiles.GENERATIONS):
        assert (run_dir / name).read_bytes() == (ref / name).read_bytes(), name
    got, want = (json.loads((d / RunFiles.EVAL).read_text())["evaluations"] for d in (run_dir, ref))
    assert {k: v["metrics"] for k, v in got.items()} == {k: v["metrics"] for k, v in want.items()}
