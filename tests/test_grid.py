"""Grid files and expansion: validation errors, matrix rules, run ids, --only filters.

No notebook runs here (see test_grid_runner.py for the runner with throwaway notebooks).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bashkir_peft.config.grid import expand, load_grid, parse_grid, parse_only, select
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.runids import canonical_json, make_run_id

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "params" / "grids"


def _grid(**over) -> dict:
    raw = {
        "name": "t",
        "default_source": "ours",
        "train": {"max_steps": 3, "run_name": "007"},
        "matrix": {"model": ["tiny-gpt2", "tiny-llama"], "method": ["base", "full", "lora", "qlora"],
                   "lora_r": [4, 8], "seed": [1, 2]},
    }
    raw.update(over)
    return raw


def test_expansion_rules():
    cells = expand(parse_grid(_grid()))
    by = lambda **kw: [c for c in cells if all(getattr(c, k) == v for k, v in kw.items())]  # noqa: E731
    # per model: base 1 (no seed/rank axis), full 2 seeds, lora/qlora 2 ranks x 2 seeds
    assert len(cells) == 2 * (1 + 2 + 4 + 4)
    assert [(c.lora_r, c.seed) for c in by(model="tiny-gpt2", method="base")] == [(None, 1)]
    assert {c.lora_r for c in by(method="full")} == {None}
    assert {(c.lora_r, c.seed) for c in by(model="tiny-llama", method="qlora")} == {(4, 1), (4, 2), (8, 1), (8, 2)}
    assert by(method="base")[0].stages == ("evaluate", "generate", "downstream")
    assert by(method="lora")[0].stages == ("train", "evaluate", "generate", "downstream")
    assert "train" not in by(method="base")[0].params
    assert len({c.slug for c in cells}) == len(cells)


def test_exclude_include_and_override_layering():
    raw = _grid(
        exclude=[{"model": "tiny-llama", "method": "full"}, {"lora_r": 8}],
        overrides=[{"when": {"method": ["lora", "qlora"]}, "train": {"max_steps": 5}},
                   {"when": {"method": "qlora", "model": "tiny-gpt2"}, "train": {"max_steps": 7}}],
        include=[{"model": "tiny-gpt2", "method": "lora", "label": "bad", "train": {"target_modules": ["nope"]}}],
    )
    cells = expand(parse_grid(raw))
    assert not [c for c in cells if c.model == "tiny-llama" and c.method == "full"]
    assert {c.lora_r for c in cells if c.method in ("lora", "qlora")} == {4}
    steps = {(c.model, c.method, c.label): c.params.get("train", {}).get("max_steps") for c in cells}
    assert steps[("tiny-gpt2", "full", None)] == 3
    assert steps[("tiny-llama", "lora", None)] == 5
    assert steps[("tiny-gpt2", "qlora", None)] == 7
    bad = [c for c in cells if c.label == "bad"]
    assert len(bad) == 1 and bad[0].lora_r == 4 and bad[0].seed == 1  # first rank and seed by default
    assert bad[0].params["train"] == {"max_steps": 5, "run_name": "007", "target_modules": ["nope"]}


def test_types_survive_loading(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(_grid()))
    cell = expand(load_grid(path))[1]
    assert cell.params["train"]["run_name"] == "007" and isinstance(cell.seed, int)


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "colour: unknown key"),
    ({"matrix": {"model": ["tiny-gpt2"], "method": ["lora"], "seed": ["x"]}}, "matrix.seed.0"),
    ({"matrix": {"model": ["tiny-gpt2"], "method": ["lora"], "lora_r": [0]}}, "matrix.lora_r.0: Input should be greater than 0"),
    ({"matrix": {"model": ["tiny-gpt2"], "method": ["sft"]}}, "matrix.method.0"),
    ({"matrix": {"model": [], "method": ["lora"]}}, "matrix.model"),
    ({"name": "a b"}, "name: String should match pattern"),
    ({"data": {"corpus": "x.jsonl"}}, "data.corpus: the corpus is set on the command line"),
    ({"exclude": [{"model": ["tiny-gpt2", "tiny-llama"]}]}, "the grid has no cells"),
    ({"overrides": [{"when": {"methd": "lora"}, "train": {}}]}, "overrides.0.when.methd: unknown key"),
    ({"default_source": None, "train": {"max_steps": {"value": 3, "source": "paper"}, "block_size": 128}},
     "g.yaml: train.block_size = 128 has no source: write {value: ..., source: \"...\"} (this grid has no "
     "default_source); 4 more without one"),
    ({"train": {"block_size": {"value": 128, "source": " "}}}, "train.block_size: source"),
    ({"strict_sources": True}, "g.yaml: default_source: refused, this grid sets strict_sources"),
])
def test_invalid_grids_fail_with_one_line(change, message):
    with pytest.raises(ConfigError) as err:
        parse_grid(_grid(**change), "g.yaml")
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith("g.yaml")


def test_annotated_values_unwrap_and_record_their_source():
    raw = _grid(train={"block_size": {"value": 128, "source": "paper", "note": "released runs"}, "lr": 1e-4},
                matrix={"model": ["tiny-gpt2"], "method": ["lora"], "seed": {"values": [42, 123], "source": "paper"}})
    grid = parse_grid(raw)
    assert grid.sources["train.block_size"] == {"source": "paper", "note": "released runs"}
    assert grid.sources["matrix.seed"]["source"] == "paper"
    assert [c.seed for c in expand(grid)] == [42, 123]
    assert expand(grid)[0].params["train"] == {"block_size": 128, "lr": 1e-4}


def test_paper_grid_refuses_an_unsourced_value_with_one_line_naming_it():
    raw = yaml.safe_load((GRIDS / "paper.yaml").read_text())
    raw["train"]["max_grad_norm"] = 1.0  # a plain value, no source
    with pytest.raises(ConfigError) as err:
        parse_grid(raw, "paper.yaml")
    assert str(err.value) == ('paper.yaml: train.max_grad_norm = 1.0 has no source: write {value: ..., source: "..."} '
                              '(this grid has no default_source)')
    raw["default_source"] = "ours"  # the paper grid refuses a blanket source
    with pytest.raises(ConfigError, match=r"^paper.yaml: default_source: refused, this grid sets strict_sources"):
        parse_grid(raw, "paper.yaml")


def test_every_value_has_a_source_where_it_was_set():
    raw = _grid(default_source="ours: test", train={"max_steps": 3, "block_size": {"value": 64, "source": "S1"}},
                matrix={"model": ["tiny-gpt2"], "method": ["lora"], "lora_r": {"values": [4], "source": "S2"}},
                overrides=[{"when": {"method": "lora"}, "train": {"max_steps": 5}, "source": "S3"}],
                include=[{"model": "tiny-gpt2", "method": "lora", "label": "x", "source": "S4",
                          "train": {"block_size": {"value": 32, "source": "S5"}}}])
    grid = parse_grid(raw)
    plain, extra = expand(grid)
    assert plain.origins["train"] == {"max_steps": "overrides[0].train.max_steps", "block_size": "train.block_size"}
    assert [grid.source(plain.origins["train"][k]) for k in ("max_steps", "block_size")] == ["S3", "S1"]
    assert grid.source(plain.origins["axes"]["lora_r"]) == "S2"
    assert grid.source(plain.origins["axes"]["model"]) == "ours: test (default_source)"
    assert grid.source("matrix.seed").startswith("default: the grid format's default: 42")  # axis not set
    assert grid.source(extra.origins["train"]["block_size"]) == "S5"
    assert grid.source(extra.origins["axes"]["label"]) == "S4"


def _bare(raw: object) -> object:
    """A grid file with every ``{value|values: x, source: ...}`` replaced by ``x``."""
    if isinstance(raw, dict):
        for key in ("value", "values"):
            if key in raw and "source" in raw and set(raw) <= {key, "source", "note"}:
                return _bare(raw[key])
        return {k: _bare(v) for k, v in raw.items()}
    return [_bare(x) for x in raw] if isinstance(raw, list) else raw


@pytest.mark.parametrize("name", ["cpu-demo", "smoke", "paper"])
def test_sources_do_not_change_what_a_cell_computes(name):
    """Annotating a value with its source changes neither the cells' parameters nor their
    run ids (the cpu-demo and smoke runs keep their ids; only a changed value moves one)."""
    raw = yaml.safe_load((GRIDS / f"{name}.yaml").read_text())
    bare = {k: v for k, v in _bare(raw).items() if k != "strict_sources"}
    annotated, plain = expand(parse_grid(raw)), expand(parse_grid({**bare, "default_source": "x"}))
    assert [(c.axes(), c.params) for c in annotated] == [(c.axes(), c.params) for c in plain]
    ids = [make_run_id(c.slug, c.axes(), c.params, "fp", "rev") for c in annotated]
    assert ids == [make_run_id(c.slug, c.axes(), c.params, "fp", "rev") for c in plain]


def test_run_id_stable_and_sensitive():
    cell = expand(parse_grid(_grid()))[3]
    args = (cell.slug, cell.axes(), cell.params, "fp1", "local:abc")
    rid = make_run_id(*args)
    again = expand(parse_grid(_grid()))[3]
    assert make_run_id(again.slug, again.axes(), again.params, "fp1", "local:abc") == rid
    assert rid.startswith(cell.slug + "-") and len(rid.rsplit("-", 1)[1]) == 12
    changed = [
        make_run_id(cell.slug, cell.axes(), {**cell.params, "train": {**cell.params["train"], "max_steps": 4}},
                    "fp1", "local:abc"),
        make_run_id(cell.slug, {**cell.axes(), "seed": 3}, cell.params, "fp1", "local:abc"),
        make_run_id(*args[:3], "fp2", "local:abc"),
        make_run_id(*args[:4], "local:abd"),
        # a value's type is part of its identity: 3 and "3" are different parameters
        make_run_id(cell.slug, cell.axes(), {**cell.params, "train": {**cell.params["train"], "max_steps": "3"}},
                    "fp1", "local:abc"),
    ]
    assert len(set(changed)) == len(changed) and rid not in changed
    assert canonical_json({"b": 1, "a": [1, "1"]}) == '{"a":[1,"1"],"b":1}'


def test_only_filters():
    cells = expand(parse_grid(_grid()))
    assert {c.seed for c in select(cells, parse_only(["seed=2"]))} == {2}
    sel = select(cells, parse_only(["method=lora,qlora", "model=tiny-llama", "lora_r=8"]))
    assert len(sel) == 4 and {(c.model, c.lora_r) for c in sel} == {("tiny-llama", 8)}
    assert {c.method for c in select(cells, parse_only(["lora_r=none"]))} == {"base", "full"}
    assert select(cells, parse_only(["method=sft"])) == []
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        parse_only(["colour=red"])
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_only(["seed"])


def test_shipped_grids():
    paper, demo, smoke = (load_grid(GRIDS / f"{n}.yaml") for n in ("paper", "cpu-demo", "smoke"))
    # paper: no default source -> the loader has checked every value carries one
    assert paper.spec.default_source is None and paper.spec.strict_sources
    assert paper.sources["train.block_size"]["source"].startswith("paper, released full-FT runs only")
    assert paper.spec.data["data_mode"] == "paper"
    for g in (paper, demo, smoke):  # no repetition penalty, with its reason (paper: except its decoding arm)
        assert {c.params["generate"]["repetition_penalty"] for c in expand(g) if c.label != "rp1.2"} == {1.0}
        assert g.sources["generate.repetition_penalty"]["source"].startswith("issue 13: the 1.2 penalty")
    arm = [c for c in expand(paper) if c.label == "rp1.2"]
    assert arm and {c.params["generate"]["repetition_penalty"] for c in arm} == {1.2}
    assert paper.sources["matrix.seed"]["source"].startswith("paper")
    assert paper.spec.matrix.seed == [42, 123, 2024] and paper.spec.matrix.lora_r == [8, 16]
    cells = expand(paper)
    assert {c.model for c in cells if c.method == "full"} == {"distilgpt2", "gpt2", "gpt2-medium"}
    assert len({c.model for c in cells if c.method != "base"}) == 7  # the paper's seven; base adds 3 Hub baselines
    assert len({c.model for c in cells}) == 10
    demo_cells = expand(demo)
    assert {c.model for c in demo_cells} == {"smollm2-135m"}
    assert sorted(c.method for c in demo_cells) == ["base", "full", "lora", "lora"]
    assert [c.tokenizer for c in demo_cells if c.method == "lora"] == ["base", "bak16k"]
    assert len(expand(smoke)) <= 4
    assert demo.spec.corpus_hint and paper.spec.corpus_hint.startswith("hub:")
    # sized for GPUs: its dry run without CUDA skips the CPU probe (tests/test_gpu_time.py)
    assert paper.spec.hardware == load_grid(GRIDS / "paper-lr.yaml").spec.hardware == "gpu"
    assert demo.spec.hardware == smoke.spec.hardware == "any"


@pytest.mark.parametrize("name", ["paper", "paper-lr", "cpu-lora-variants", "cpu-demo", "smoke", "cpu-tokenizer", "cpu-study",
                                  "cpu-study-lr"])
def test_shipped_grids_fit_the_real_notebooks(name):
    """Every setting of every cell is a parameter of the real notebook and passes the
    stage's parameter model (types, ranges), so a shipped grid never fails late on a typo."""
    from bashkir_peft.executor import default_notebooks_dir, notebook_parameters
    from bashkir_peft.grid.runner import GridRun, Planned
    from bashkir_peft.stages import STAGES

    grid = load_grid(GRIDS / f"{name}.yaml")
    run = GridRun(grid, "/data/corpus.jsonl.gz", Path("/runs") / name, default_notebooks_dir())
    for stage in STAGES:
        run.declared[stage] = notebook_parameters(run.notebook(stage))
    assert run.data_parameters()["corpus"] == "/data/corpus.jsonl.gz"
    for cell in expand(grid):
        units = run.units(Planned(cell, "unpinned"))
        assert [u.stage for u in units][:1] == (["train"] if cell.method != "base" else ["evaluate"])
