"""Every stage notebook is thin and honest about its parameters: its papermill
``parameters`` cell declares exactly the fields of the stage's params model with the same
defaults (the model is the one source of defaults; a notebook that runs several passes in one
execution also declares ``passes``, default ``None``), it runs on the project's kernel, and
it is committed without outputs."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import papermill
import pytest

from bashkir_peft.stages import STAGES as STAGE_TABLE
from bashkir_peft.yamlio import PASSES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STAGES = [(s.notebook, s.params_model) for s in STAGE_TABLE.values()]


@pytest.mark.parametrize("name, model", STAGES, ids=[n for n, _ in STAGES])
def test_parameters_cell_repeats_the_params_model(name, model):
    declared = papermill.inspect_notebook(str(NOTEBOOKS / name))
    if PASSES in declared:
        assert ast.literal_eval(declared.pop(PASSES)["default"]) is None
    assert set(declared) == set(model.model_fields)
    for field, info in declared.items():
        default = model.model_fields[field].get_default(call_default_factory=True)
        assert ast.literal_eval(info["default"]) == default, field


@pytest.mark.parametrize("name", [n for n, _ in STAGES])
def test_notebook_uses_the_project_kernel_and_has_no_outputs(name):
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "bashkir-peft"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit without outputs"


@pytest.mark.parametrize("model", [m for _, m in STAGES], ids=lambda m: m.__name__)
def test_every_default_carries_its_source(model):
    """A default's source lives on its params-model field (what ``grid run --dry-run`` prints)."""
    missing = [name for name, f in model.model_fields.items()
               if not (isinstance(f.json_schema_extra, dict) and str(f.json_schema_extra.get("source", "")).strip())]
    assert missing == []
