"""The grid runner with small throwaway notebooks (fast): papermill injection and type
survival, skipping finished cells, failure recording while other cells go on, exit codes,
dry run, --only, --force, and the per-cell lock held by a second process.

The throwaway notebooks follow the real stages' contract (parameters cell, output
records train.json / eval.json / generate.json, manifest.json with a fingerprint) but do
no learning, so every execution costs only a kernel start.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from bashkir_peft.cli import main
from bashkir_peft.config.grid import load_grid, parse_only
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runner import plan, run_grid
from bashkir_peft.records import RunFiles
from bashkir_peft.stages import STAGE_SECTIONS, STAGES

PARAMS = {
    "data": 'corpus = None\noutput_dir = None\nmin_chars = 10\nfail_data = False',
    "train": ('model = "x"\nmethod = "lora"\nlora_r = 8\nseed = 0\ndata_dir = None\noutput_dir = None\n'
              'max_steps = 2\nrun_name = "run"\ntarget_modules = None'),
    "evaluate": 'model = None\nrun_dir = None\ndata_dir = None\noutput_dir = None\nprotocol = "rolling"\nmax_documents = None',
    "generate": 'model = None\nrun_dir = None\ndata_dir = None\noutput_dir = None\nseed = 0\nmax_new_tokens = 4',
    "downstream": 'model = None\nrun_dir = None\noutput_dir = None\nk_shots = [0, 5]\nmax_test = None',
}
# The throwaway notebooks write records of the contract (tests/report_synth.py builds them);
# what the tests inspect besides (injected types, executions) goes into files of their own.
PREAMBLE = """
import json, pathlib, sys
sys.path.insert(0, "tests")
import pandas as pd
from report_synth import stage_downstream_record, stage_eval_entry, stage_generate_record, stage_train_record
from bashkir_peft.data.folder import write_presplit_folder
from bashkir_peft.records import EvalRecord, read_record_if_any, write_record
"""
BODIES = {
    "data": """
        import hashlib
        assert not fail_data, "data prep told to fail"
        fp = hashlib.sha256(pathlib.Path(corpus).read_bytes() + str(min_chars).encode()).hexdigest()[:16]
        empty = pd.DataFrame({"id": [], "source": [], "text": []}, dtype=str)
        write_presplit_folder(output_dir, {s: empty for s in ("train", "validation", "test")}, fp,
                              {"kind": "file", "location": corpus})
        """,
    "train": """
        out = pathlib.Path(output_dir); out.mkdir(parents=True, exist_ok=True)
        with open(out / "executions.txt", "a") as f: f.write("train\\n")
        params = {"model": model, "method": method, "seed": seed, "lora_r": lora_r}
        if target_modules and "nope" in target_modules:
            write_record(out / "train.json", stage_train_record(params, "failed", "target modules not found"))
            raise ValueError(f"target modules {target_modules} not found in the model")
        types = {k: type(v).__name__ for k, v in dict(seed=seed, lora_r=lora_r, run_name=run_name, max_steps=max_steps).items()}
        (out / "types.json").write_text(json.dumps(types))
        write_record(out / "train.json", stage_train_record(params))
        """,
    "evaluate": """
        out = pathlib.Path(output_dir)
        assert (model is None) != (run_dir is None)
        with open(out / "executions.txt", "a") as f: f.write(f"evaluate {protocol}\\n")
        old = read_record_if_any(out / "eval.json", EvalRecord)
        evaluations = {**(old.evaluations if old else {}), protocol: stage_eval_entry(protocol, model, run_dir)}
        write_record(out / "eval.json", EvalRecord(stage="evaluate", status="finished", method="base", model=None,
                                                   model_name=model, run_dir=run_dir, evaluations=evaluations))
        """,
    "generate": """
        out = pathlib.Path(output_dir)
        with open(out / "executions.txt", "a") as f: f.write("generate\\n")
        (out / "generate_types.json").write_text(json.dumps({"seed": type(seed).__name__}))
        write_record(out / "generate.json", stage_generate_record("unit"))
        """,
    "downstream": """
        out = pathlib.Path(output_dir)
        assert (model is None) != (run_dir is None)
        with open(out / "executions.txt", "a") as f: f.write(f"downstream {k_shots} {max_test}\\n")
        write_record(out / "downstream.json", stage_downstream_record(model, run_dir))
        """,
}
FILES = {name: stage.notebook for name, stage in STAGES.items() if name in STAGE_SECTIONS}


def write_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stage, name in FILES.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "bashkir-peft", "display_name": "Python (bashkir-peft)",
                                     "language": "python"}
        cell = nbformat.v4.new_code_cell(PARAMS[stage])
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell(PREAMBLE + textwrap.dedent(BODIES[stage]))]
        nbformat.write(nb, folder / name)
    return folder


GRID = {
    "name": "unit",
    "default_source": "ours",
    "train": {"max_steps": 3, "run_name": "007"},
    "evaluate": {"passes": [{"protocol": "paper"}, {"protocol": "rolling"}]},
    "downstream": {"k_shots": [0], "max_test": 7},
    "matrix": {"model": ["tiny-gpt2"], "method": ["base", "lora"], "lora_r": [4], "seed": [42]},
    "include": [{"model": "tiny-gpt2", "method": "lora", "label": "bad", "train": {"target_modules": ["nope"]}}],
}


def write_grid(path: Path, **over) -> Path:
    path.write_text(yaml.safe_dump({**GRID, **over}))
    return path


def executions(run_dir: Path) -> list[str]:
    f = run_dir / "executions.txt"
    return f.read_text().split("\n")[:-1] if f.exists() else []


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One real grid invocation through the CLI: base + lora + a failing lora cell."""
    tmp = tmp_path_factory.mktemp("grid")
    nbs = write_notebooks(tmp / "notebooks")
    corpus = tmp / "corpus.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    grid = write_grid(tmp / "unit.yaml")
    args = ["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp / "runs"),
            "--notebooks", str(nbs), "--no-progress"]
    code = main(args)
    root = tmp / "runs" / "unit"
    cells = {json.loads(p.read_text())["params"]["label"] or json.loads(p.read_text())["params"]["method"]:
             (p.parent, json.loads(p.read_text())) for p in root.glob(f"*/{RunFiles.CELL}")}
    return {"code": code, "root": root, "cells": cells, "args": args, "tmp": tmp, "grid": grid,
            "corpus": corpus, "nbs": nbs}


def test_failed_cell_recorded_others_finish_exit_nonzero(ran):
    assert ran["code"] == 1
    assert set(ran["cells"]) == {"base", "lora", "bad"}
    run_dir, bad = ran["cells"]["bad"]
    assert bad["status"] == "failed"
    assert bad["error"] == "train: ValueError: target modules ['nope'] not found in the model"
    assert bad["failure"]["cell_index"] == 2 and bad["failure"]["ename"] == "ValueError"  # 0 params, 1 injected
    assert "raise ValueError" in bad["failure"]["traceback"]
    assert (run_dir / "notebooks" / "02_train.ipynb").is_file()  # the failed notebook is kept, with its error
    assert executions(run_dir) == ["train"]  # evaluation never ran on a failed training
    for name in ("base", "lora"):
        run_dir, rec = ran["cells"][name]
        assert rec["status"] == "finished", rec
        assert {p.name for p in (run_dir / "notebooks").iterdir()} >= {"03_evaluate.1.ipynb", "03_evaluate.2.ipynb",
                                                                        "04_generate.ipynb", "06_downstream.ipynb"}
        assert json.loads((run_dir / "eval.json").read_text())["evaluations"].keys() == {"paper", "rolling"}
    index = json.loads((ran["root"] / "grid.json").read_text())
    assert sorted(c["status"] for c in index["cells"]) == ["failed", "finished", "finished"]


def test_parameters_injected_and_types_survive(ran):
    run_dir, rec = ran["cells"]["lora"]
    types = json.loads((run_dir / "types.json").read_text())
    assert types == {"seed": "int", "lora_r": "int", "run_name": "str", "max_steps": "int"}
    train = json.loads((run_dir / "train.json").read_text())
    assert train["params"] == {"model": "tiny-gpt2", "method": "lora", "seed": 42, "lora_r": 4, "learning_rate": 1e-4}
    assert json.loads((run_dir / "generate_types.json").read_text())["seed"] == "int"
    # evaluation of a trained cell gets run_dir (not model); of a base cell, model (not run_dir)
    assert json.loads((run_dir / "eval.json").read_text())["run_dir"] == str(run_dir)
    base_dir, _ = ran["cells"]["base"]
    base_eval = json.loads((base_dir / "eval.json").read_text())
    assert base_eval["model_name"] == "tiny-gpt2" and base_eval["run_dir"] is None
    # the downstream stage runs after evaluation, on the run (trained) or the base model, with
    # the grid's settings injected (a list stays a list)
    assert executions(run_dir)[-1] == executions(base_dir)[-1] == "downstream [0] 7"
    assert json.loads((run_dir / "downstream.json").read_text())["run_dir"] == str(run_dir)
    assert json.loads((base_dir / "downstream.json").read_text())["model_name"] == "tiny-gpt2"
    assert not (base_dir / "notebooks" / "02_train.ipynb").exists()
    assert rec["stages"]["train"]["parameters"]["output_dir"] == str(run_dir)
    assert rec["identity"]["params"]["train"] == {"max_steps": 3, "run_name": "007"}


def test_second_invocation_skips_finished_and_retries_failed(ran, capsys):
    before = {k: executions(d) for k, (d, _) in ran["cells"].items()}
    assert main(ran["args"]) == 1
    out = capsys.readouterr().out
    after = {k: executions(d) for k, (d, _) in ran["cells"].items()}
    assert after["base"] == before["base"] and after["lora"] == before["lora"]
    assert after["bad"] == before["bad"] + ["train"]
    assert out.count(" skipped ") == 2 and "1 failed" in out


def test_dry_run_lists_cells_with_run_ids_and_runs_nothing(ran, capsys):
    before = {k: executions(d) for k, (d, _) in ran["cells"].items()}
    assert main(ran["args"] + ["--dry-run", "--only", "method=lora"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "model=" in ln]
    assert sorted(ln.split()[0] for ln in lines) == sorted(d.name for k, (d, _) in ran["cells"].items() if k != "base")
    assert "[finished]" in out and "[failed]" in out and "2 cells" in out
    assert {k: executions(d) for k, (d, _) in ran["cells"].items()} == before


def test_dry_run_before_data_prep_touches_nothing(tmp_path, capsys):
    nbs = write_notebooks(tmp_path / "nb")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    code = main(["grid", "run", str(write_grid(tmp_path / "g.yaml")), "--corpus", str(corpus), "--runs-dir",
                 str(tmp_path / "runs"), "--notebooks", str(nbs), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "<pending data>" in out and "3 cells" in out
    assert not (tmp_path / "runs").exists()


def test_dry_run_prints_every_value_with_its_source(tmp_path, capsys):
    nbs = write_notebooks(tmp_path / "nb")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    grid = write_grid(tmp_path / "g.yaml", train={"max_steps": {"value": 3, "source": "S: three steps"},
                                                  "run_name": "007"})
    assert main(["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
                 "--notebooks", str(nbs), "--dry-run", "--only", "label=none", "--only", "method=lora"]) == 0
    rows = [ln.split(None, 3) for ln in capsys.readouterr().out.splitlines() if ln.startswith("    ")]
    by = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    assert by[("train", "max_steps")] == ("3", "S: three steps")  # set in the grid, annotated
    assert by[("train", "run_name")] == ("'007'", "ours (default_source)")  # plain value, grid-level source
    assert by[("train", "lora_r")] == ("4", "cell axis lora_r: ours (default_source)")
    assert by[("evaluate.2", "protocol")] == ("'rolling'", "ours (default_source) (pass 2 of evaluate)")
    assert by[("data", "corpus")] == (repr(str(corpus)), "command line: --corpus")
    # every field of a stage's params model is listed; one the grid leaves alone shows its default's source
    from bashkir_peft.config.train import TrainParams
    assert {name for unit, name in by if unit == "train"} >= set(TrainParams.model_fields)
    assert by[("train", "max_grad_norm")] == ("1.0", "default: transformers TrainingArguments default; "
                                                     "the paper states none")


def test_changed_parameter_gives_new_run_and_force_reruns(ran, tmp_path):
    grid = load_grid(write_grid(tmp_path / "unit.yaml", train={"max_steps": 4, "run_name": "007"}))
    changed = plan(grid, str(ran["corpus"]), runs_root=ran["root"].parent, notebooks_dir=ran["nbs"],
                   only=parse_only(["method=lora", "label=none"]))
    old_dir, _ = ran["cells"]["lora"]
    assert changed.cells[0].run_id != old_dir.name  # any change -> a new run id (not reused)
    same = plan(load_grid(ran["grid"]), str(ran["corpus"]), runs_root=ran["root"].parent,
                notebooks_dir=ran["nbs"], only=parse_only(["method=base"]))
    [res] = run_grid(same, force=True, progress=False)
    base_dir, _ = ran["cells"]["base"]
    assert res.status == "finished" and res.planned.run_dir == base_dir
    assert executions(base_dir) == ["evaluate paper", "evaluate rolling", "generate", "downstream [0] 7"]  # fresh
    moved = list((ran["root"] / ".replaced").glob(f"{base_dir.name}-*"))
    assert len(moved) == 1 and (moved[0] / "eval.json").is_file()  # nothing deleted


def test_cell_held_by_another_process_is_left_alone(ran, hold_lock):
    run = plan(load_grid(ran["grid"]), str(ran["corpus"]), runs_root=ran["root"].parent,
               notebooks_dir=ran["nbs"], only=parse_only(["method=lora", "label=none"]))
    with hold_lock(ran["root"] / ".locks" / f"{run.cells[0].run_id}.lock"):
        before = executions(run.cells[0].run_dir)
        [res] = run_grid(run, force=True, progress=False)
        assert res.status == "locked"
        assert executions(run.cells[0].run_dir) == before  # not rerun, not moved aside


@pytest.mark.parametrize("over, message", [
    ({"train": {"learning_rat": 0.1}}, "learning_rat not a parameter of 02_train.ipynb"),
    ({"train": {"seed": 3}}, "seed set by the grid runner"),
    ({"evaluate": {"passes": "paper"}}, "passes must be a non-empty list"),
])
def test_bad_settings_fail_before_any_work(tmp_path, over, message):
    nbs = write_notebooks(tmp_path / "nb")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    with pytest.raises(ConfigError, match=message):
        plan(load_grid(write_grid(tmp_path / "g.yaml", **over)), str(corpus), runs_root=tmp_path / "runs",
             notebooks_dir=nbs)
    assert not (tmp_path / "runs").exists()


def test_corpus_is_required_without_fallback(tmp_path, capsys):
    grid = write_grid(tmp_path / "g.yaml")
    assert main(["grid", "run", str(grid), "--notebooks", str(write_notebooks(tmp_path / "nb"))]) == 2
    assert "the corpus is required" in capsys.readouterr().err
    assert main(["grid", "run", str(grid), "--corpus", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_data_prep_failure_stops_with_exit_1(tmp_path, capsys):
    nbs = write_notebooks(tmp_path / "nb")
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("{}\n")
    grid = write_grid(tmp_path / "g.yaml", data={"fail_data": True})
    code = main(["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
                 "--notebooks", str(nbs), "--no-progress"])
    assert code == 1
    assert "data preparation failed: data: AssertionError: data prep told to fail" in capsys.readouterr().err
    rec = json.loads((tmp_path / "runs" / "unit" / "data_prep.attempt.json").read_text())
    assert rec["status"] == "failed" and rec["failure"]["ename"] == "AssertionError"
    assert not (tmp_path / "runs" / "unit" / "data_prep.json").exists()  # written only on success


def test_submitit_executor_runs_cells_as_jobs(ran, capsys):
    """The cluster path (one submitit job per cell), with submitit's in-process debug
    executor: finished cells are skipped by the job as locally; the failed one reruns."""
    pytest.importorskip("submitit")  # the `cluster` extra
    before = {k: executions(d) for k, (d, _) in ran["cells"].items()}
    assert main(ran["args"] + ["--executor", "debug", "--only", "method=lora"]) == 1
    out = capsys.readouterr().out
    assert "skipped" in out and "failed" in out
    after = {k: executions(d) for k, (d, _) in ran["cells"].items()}
    assert after["lora"] == before["lora"] and after["bad"] == before["bad"] + ["train"]


def test_interrupted_cell_resumes_after_its_last_finished_stage(ran):
    """A cell killed during its second evaluation pass: the rerun does not retrain or
    re-evaluate the first pass; it runs what had not finished."""
    run_dir, _ = ran["cells"]["lora"]
    rec_path = run_dir / RunFiles.CELL
    rec = json.loads(rec_path.read_text())
    rec["status"] = "running"
    rec["stages"]["evaluate.2"]["status"] = "running"
    del rec["stages"]["generate"], rec["stages"]["downstream"]
    rec_path.write_text(json.dumps(rec))
    before = executions(run_dir)
    assert main(ran["args"] + ["--only", "method=lora", "--only", "label=none"]) == 0
    assert executions(run_dir) == before + ["evaluate rolling", "generate", "downstream [0] 7"]
    assert json.loads(rec_path.read_text())["status"] == "finished"


def test_status_lists_every_cell_from_disk(ran, capsys):
    args = ["grid", "status", str(ran["grid"]), "--runs-dir", str(ran["root"].parent), "--notebooks", str(ran["nbs"])]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    status = {ln.split()[0]: ln.split()[1] for ln in lines}
    assert status == {d.name: ("failed" if k == "bad" else "finished") for k, (d, _) in ran["cells"].items()}
