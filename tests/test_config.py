"""Configuration at the bottom: one spelling of every name, one output-folder rule for every
stage, and a cell's parameters validated once, where they enter (the grid plan), then kept typed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bashkir_peft.config.downstream import DownstreamParams
from bashkir_peft.config.evaluate import EvalParams
from bashkir_peft.config.generate import GenerateParams
from bashkir_peft.config.grid import expand, load_grid
from bashkir_peft.config.train import TrainParams
from bashkir_peft.executor import default_notebooks_dir, notebook_parameters
from bashkir_peft.grid import stages as grid_stages
from bashkir_peft.grid.runner import GridRun, Planned
from bashkir_peft.grid.stages import RUN_DIR
from bashkir_peft.names import (
    BASE_TOKENIZER,
    METHODS,
    label_parts,
    label_tokenizer,
    method_label,
    method_sort_key,
    run_label,
)
from bashkir_peft.settings import runs_root
from bashkir_peft.stages import CELL_STAGES, STAGE_SECTIONS, STAGES

GRIDS = Path(__file__).resolve().parents[1] / "params" / "grids"


def test_method_labels_round_trip_and_sort_in_one_order():
    labels = ["qlora r=16", "full", "reference text", "lora r=64", "base", "lora r=8"]
    assert sorted(labels, key=method_sort_key) == ["reference text", "base", "full", "lora r=8", "lora r=64",
                                                    "qlora r=16"]
    for method in METHODS:
        r = 8 if method in ("lora", "qlora") else None
        assert label_parts(method_label(method, r, "bak16k")) == (method, r)
        assert label_tokenizer(method_label(method, r, "bak16k", "use_dora")) == "bak16k"
        assert label_tokenizer(method_label(method, r)) == BASE_TOKENIZER
        armed = method_label(method, r, "bak16k", "use_rslora", arm="long")
        assert armed.endswith(" [use_rslora] @long") and label_parts(armed) == (method, r)
        assert label_tokenizer(armed) == "bak16k" and label_tokenizer(method_label(method, r, arm="long")) == "base"
    assert run_label("smollm2-135m", "qlora", 8, 42) == "smollm2-135m/qlora/r8/s42"


@pytest.mark.parametrize("model", [EvalParams, GenerateParams, DownstreamParams])
def test_every_stage_writes_where_the_one_output_folder_rule_says(model):
    extra = {"data_dir": "d"} if model is not DownstreamParams else {}
    assert model(model="tiny-gpt2", output_dir="/o", **extra).out_dir == Path("/o")
    assert model(run_dir="/runs/g/r1", **extra).out_dir == Path("/runs/g/r1")
    assert model(model="owner/some model", **extra).out_dir == runs_root() / "base" / "owner_some_model"


def test_the_stage_table_names_the_grid_sections_and_the_cell_stages():
    assert STAGE_SECTIONS == ("data", "train", "evaluate", "generate", "downstream")
    assert CELL_STAGES == ("train", "evaluate", "generate", "downstream")
    assert [STAGES[s].notebook for s in STAGES] == ["01_data_prep.ipynb", "02_train.ipynb", "03_evaluate.ipynb",
                                                     "04_generate.ipynb", "06_downstream.ipynb", "05_report.ipynb"]


def test_a_cells_parameters_are_validated_once_and_placed_without_validating_again(monkeypatch):
    grid = load_grid(GRIDS / "cpu-demo.yaml")
    run = GridRun(grid, "/data/corpus.jsonl.gz", Path("/runs") / "cpu-demo", default_notebooks_dir())
    for stage in STAGE_SECTIONS:
        run.declared[stage] = notebook_parameters(run.notebook(stage))
    calls = []
    real = grid_stages.validate
    monkeypatch.setattr(grid_stages, "validate", lambda *a: calls.append(a[0]) or real(*a))
    p = Planned(next(c for c in expand(grid) if c.method == "lora"), "unpinned")
    units = run.units(p)
    assert run.units(p) is units and len(calls) == len(units)  # asked twice, validated once per unit
    train = units[0]
    assert isinstance(train.params, TrainParams) and train.params.output_dir == RUN_DIR
    assert train.params.learning_rate == grid.spec.train["learning_rate"] if "learning_rate" in grid.spec.train \
        else train.params.learning_rate is None
    placed = train.placed("/runs/cpu-demo/smollm2-135m-lora-r8-s42-abc")
    assert len(calls) == len(units)  # placing the run folder validates nothing again
    assert placed.parameters["output_dir"] == placed.params.output_dir == "/runs/cpu-demo/smollm2-135m-lora-r8-s42-abc"
    assert placed.params.model_dump(exclude={"output_dir"}) == train.params.model_dump(exclude={"output_dir"})
