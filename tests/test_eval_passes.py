"""One notebook execution per stage per cell for all of its passes (issue 28): the grouping of a
cell's units into executions, the per-pass parameters a notebook derives from ``passes``
(each as if injected alone), and a grid run whose evaluation notebook takes ``passes``: both
passes in one execution, recorded per pass, resumable."""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from bashkir_peft.cli import main
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runner import executions as group_executions
from bashkir_peft.grid.stages import Unit
from bashkir_peft.records import RunFiles
from bashkir_peft.yamlio import INJECTED_HEADER, notebook_passes
from test_grid_runner import BODIES, PARAMS, PREAMBLE, executions, write_grid, write_notebooks


def _unit(name: str) -> Unit:
    return Unit(name, name.split(".")[0], {}, EvalParams(model="m", data_dir="d"))


def test_passes_of_a_stage_that_takes_them_run_together():
    """Consecutive passes of a stage whose notebook declares ``passes`` form one execution;
    stages without passes, and passes of a notebook without ``passes``, run alone."""
    units = [_unit(n) for n in ("train", "evaluate.1", "evaluate.2", "evaluate.3", "generate.1", "generate.2",
                                "downstream")]
    groups = group_executions(units, {"evaluate"})
    assert [[u.name for u in g] for g in groups] == [
        ["train"], ["evaluate.1", "evaluate.2", "evaluate.3"], ["generate.1"], ["generate.2"], ["downstream"]]
    # a resumed cell: only the passes still to run
    assert [[u.name for u in g] for g in group_executions(units[2:4], {"evaluate"})] == [["evaluate.2", "evaluate.3"]]


def _namespace(passes, **defaults) -> dict:
    """A notebook's globals after its parameters cell (``defaults``) and papermill's injected cell."""
    injected = f"{INJECTED_HEADER}\npasses = {passes!r}\n"
    return {**defaults, "passes": passes, "In": ["", injected]}


def test_each_pass_is_validated_over_the_notebook_defaults():
    """A pass gets exactly its own mapping over the parameters cell's defaults: a value set by
    one pass does not leak into the next."""
    ns = _namespace([{"model": "m", "protocol": "paper", "block_size": 16},
                     {"model": "m", "external": {"name": "x", "path": "/work/shared/eval/sib200/eng_Latn", "format": "sib200"}}],
                    protocol="rolling", max_length=64, block_size=None, data_dir="d")
    first, second = notebook_passes(EvalParams, ns)
    assert (first.protocol, first.block_size, first.external) == ("paper", 16, None)
    assert (second.protocol, second.block_size, second.max_length) == ("rolling", None, 64)
    assert second.external.name == "x"


def test_without_passes_one_pass_as_before():
    assert [p.model for p in notebook_passes(EvalParams, {"model": "m", "data_dir": "d", "passes": None})] == ["m"]


@pytest.mark.parametrize(("namespace", "message"), [
    ({"passes": [{"protocl": "paper"}], "In": ["", f"{INJECTED_HEADER}\npasses = []\n"]},
     "pass 1: unknown parameter"),
    ({"passes": [{"model": "m"}], "In": ["", f"{INJECTED_HEADER}\nmodel = 'm'\npasses = []\n"]},
     "injected beside passes"),
    ({"passes": [], "In": []}, "non-empty list"),
    ({"passes": [{"model": "m", "data_dir": "d", "max_length": -1}], "In": []}, "pass 1.*max_length"),
])
def test_bad_passes_fail_in_one_line(namespace, message):
    with pytest.raises(ConfigError, match=message):
        notebook_passes(EvalParams, namespace)


EVALUATE_PASSES = PARAMS["evaluate"] + "\npasses = None"
EVALUATE_BODY = """
    from bashkir_peft.yamlio import notebook_passes
    from bashkir_peft.config.evaluate import EvalParams
    for p in (passes or [dict(model=model, run_dir=run_dir, output_dir=output_dir, protocol=protocol)]):
        model, run_dir, output_dir, protocol = p.get("model"), p.get("run_dir"), p["output_dir"], p["protocol"]
""" + textwrap.indent(textwrap.dedent(BODIES["evaluate"]), " " * 8)


@pytest.fixture(scope="module")
def ran_together(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("passes")
    nbs = write_notebooks(tmp / "notebooks")
    nb = nbformat.read(nbs / "03_evaluate.ipynb", as_version=4)
    nb.cells[0].source = EVALUATE_PASSES
    nb.cells[1].source = PREAMBLE + textwrap.dedent(EVALUATE_BODY)
    nbformat.write(nb, nbs / "03_evaluate.ipynb")
    corpus = tmp / "c.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    grid = write_grid(tmp / "unit.yaml", matrix={"model": ["tiny-gpt2"], "method": ["base"], "lora_r": [4],
                                                 "seed": [42]}, include=[], stages=["evaluate"])
    args = ["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp / "runs"),
            "--notebooks", str(nbs), "--no-progress"]
    code = main(args)
    (run_dir,) = [p.parent for p in (tmp / "runs" / "unit").glob(f"*/{RunFiles.CELL}")]
    return {"code": code, "run_dir": run_dir, "args": args}


def test_both_passes_in_one_execution_recorded_per_pass(ran_together):
    run_dir = ran_together["run_dir"]
    assert ran_together["code"] == 0
    assert executions(run_dir) == ["evaluate paper", "evaluate rolling"]
    notebooks = {p.name for p in (run_dir / "notebooks").iterdir()}
    assert "03_evaluate.ipynb" in notebooks and not any(n.startswith("03_evaluate.") and n[12].isdigit()
                                                         for n in notebooks)
    rec = json.loads((run_dir / RunFiles.CELL).read_text())
    first, second = rec["stages"]["evaluate.1"], rec["stages"]["evaluate.2"]
    assert first["status"] == second["status"] == "finished"
    assert first["notebook"] == second["notebook"] and first["notebook"].endswith("03_evaluate.ipynb")
    assert (first["parameters"]["protocol"], second["parameters"]["protocol"]) == ("paper", "rolling")
    assert first["wall_time_s"] > 0 and second["wall_time_s"] is None  # one execution, timed once
    assert "eval.json" in first["files"]
    assert json.loads((run_dir / "eval.json").read_text())["evaluations"].keys() == {"paper", "rolling"}


def test_interrupted_during_the_passes_reruns_only_the_unfinished_ones(ran_together):
    run_dir = ran_together["run_dir"]
    rec_path = run_dir / RunFiles.CELL
    rec = json.loads(rec_path.read_text())
    rec["status"] = "running"
    rec["stages"]["evaluate.2"]["status"] = "running"
    rec_path.write_text(json.dumps(rec))
    before = executions(run_dir)
    assert main(ran_together["args"]) == 0
    assert executions(run_dir) == before + ["evaluate rolling"]
    assert json.loads(rec_path.read_text())["status"] == "finished"
