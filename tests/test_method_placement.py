"""Where a LoRA adapter sits is part of its method label (issue 29): a run whose
``train.target_modules`` is set to other modules than the registry's default for its
architecture is labelled ``lora r=8 [attention]`` (exactly the attention projections) or with
its module list, combined with the LoRA variant and the tokenizer, so the report never pools
attention-only and all-linear runs."""

from __future__ import annotations

import numpy as np
import pytest

from bashkir_peft.models.registry import load_registry
from bashkir_peft.names import label_parts, label_tokenizer, method_label, method_sort_key
from bashkir_peft.records import CellRecord, RunFiles, TrainRecord, read_record, write_record
from bashkir_peft.report.runs import discover_runs, index_gaps, read_run
from report_synth import documents, write_index, write_run

ALL_LINEAR = {"gpt2": ["c_attn", "c_proj", "c_fc"], "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
              "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
ATTENTION = {"gpt2": ["c_attn", "attn.c_proj"], "phi": ["q_proj", "k_proj", "v_proj", "dense"],
             "llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
             "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"]}


@pytest.mark.parametrize("model_type", sorted(ATTENTION))
def test_the_attention_projections_are_named_attention_in_any_order(model_type):
    reg = load_registry()
    assert reg.attention_modules[model_type] == ATTENTION[model_type]
    assert reg.placement(model_type, list(reversed(ATTENTION[model_type]))) == "attention"


@pytest.mark.parametrize("model_type", sorted(ALL_LINEAR))
def test_the_default_placement_set_or_unset_has_no_name(model_type):
    reg = load_registry()
    assert reg.placement(model_type, None) == ""
    assert reg.placement(model_type, sorted(ALL_LINEAR[model_type])) == ""  # the default, written out


def test_another_placement_is_named_by_its_modules():
    reg = load_registry()
    assert reg.placement("llama", ["v_proj", "q_proj"]) == "v_proj+q_proj"
    assert reg.placement("gpt2", ["c_attn", "c_proj"]) == "c_attn+c_proj"  # c_proj: attention and MLP output
    assert reg.placement(None, ["q_proj", "k_proj", "v_proj", "o_proj"]) == "q_proj+k_proj+v_proj+o_proj"


def test_placement_combines_with_the_variant_and_the_tokenizer_and_parses_back():
    assert method_label("lora", 8, placement="attention") == "lora r=8 [attention]"
    label = method_label("lora", 64, "bak16k", "use_rslora", "attention")
    assert label == "lora r=64 tok=bak16k [attention, use_rslora]"
    assert label_parts(label) == ("lora", 64) and label_tokenizer(label) == "bak16k"
    assert method_label("qlora", 8, placement="v_proj+q_proj") == "qlora r=8 [v_proj+q_proj]"
    labels = ["lora r=8 tok=bak16k", "lora r=64 [use_rslora]", "lora r=8 [attention]", "full", "lora r=8"]
    assert sorted(labels, key=method_sort_key) == ["full", "lora r=8", "lora r=8 [attention]", "lora r=8 tok=bak16k",
                                                   "lora r=64 [use_rslora]"]


def _set_train(run_dir, **params):
    t = read_record(run_dir / RunFiles.TRAIN, TrainRecord)
    write_record(run_dir / RunFiles.TRAIN, t.model_copy(update={"params": t.params.model_copy(update=params)}))


def test_a_runs_label_carries_its_placement_from_the_training_record(tmp_path):
    rng = np.random.default_rng(0)
    docs = documents(rng, 4)
    for run_id, params in [("all", {}), ("all-written", {"target_modules": ["c_fc", "c_attn", "c_proj"]}),
                           ("attn", {"target_modules": ["c_attn", "attn.c_proj"]}),
                           ("fused", {"target_modules": ["c_attn"]}),
                           ("attn-rs", {"target_modules": ["c_attn", "attn.c_proj"],
                                        "lora_options": {"use_rslora": True}})]:
        d = write_run(tmp_path, run_id, "tiny-gpt2", "lora", 8, 1, 2.5, docs, rng, generate=False)
        _set_train(d, **params)
    full = write_run(tmp_path, "full", "tiny-gpt2", "full", None, 1, 2.5, docs, rng, generate=False)
    _set_train(full, target_modules=["c_attn"])  # meaningless for full fine-tuning: no placement
    labels = {r.run_id: r.method_label for r in discover_runs(tmp_path)}
    assert labels == {"all": "lora r=8", "all-written": "lora r=8", "attn": "lora r=8 [attention]",
                      "fused": "lora r=8 [c_attn]", "attn-rs": "lora r=8 [attention, use_rslora]", "full": "full"}


def test_a_model_outside_the_registry_takes_its_architecture_from_the_training_record(tmp_path):
    rng = np.random.default_rng(0)
    d = write_run(tmp_path, "hub", "tiny-gpt2", "lora", 8, 1, 2.5, documents(rng, 4), rng, generate=False)
    t = read_record(d / RunFiles.TRAIN, TrainRecord)
    assert t.model.model_type == "gpt2"
    cell = read_record(d / RunFiles.CELL, CellRecord)
    write_record(d / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(
        update={"model": "someone/gpt2-like"})}))
    _set_train(d, target_modules=["attn.c_proj", "c_attn"])
    assert read_run(d).method_label == "lora r=8 [attention]"


def test_a_cell_without_records_is_labelled_with_its_tokenizer(tmp_path):
    rng = np.random.default_rng(0)
    d = write_run(tmp_path, "gone", "tiny-gpt2", "lora", 8, 1, 2.5, documents(rng, 4), rng, generate=False)
    cell = read_record(d / RunFiles.CELL, CellRecord)
    write_record(d / RunFiles.CELL, cell.model_copy(update={"params": cell.params.model_copy(
        update={"tokenizer": "bak16k"})}))
    write_index(tmp_path, ["gone"])
    (d / RunFiles.CELL).unlink()  # the folder's records are gone: the index's axes label it
    [gap] = index_gaps(tmp_path)
    assert gap["method_label"] == "lora r=8 tok=bak16k"


def test_a_study_may_name_a_placement_and_a_variant_of_its_cells():
    from bashkir_peft.config.grid import parse_grid
    from bashkir_peft.errors import ConfigError

    grid = {"name": "g", "default_source": "ours: test", "matrix": {"model": ["tiny-gpt2"], "method": ["full"]},
            "include": [{"model": "tiny-gpt2", "method": "lora", "lora_r": 8, "label": "attn",
                         "train": {"target_modules": ATTENTION["gpt2"]}},
                        {"model": "tiny-gpt2", "method": "lora", "lora_r": 64, "label": "rs",
                         "train": {"lora_options": {"use_rslora": True}}}]}
    study = {"primary": {"a": "lora r=8 [attention]", "b": "full", "question": "q?"},
             "secondary": [{"a": "lora r=64 [use_rslora]", "b": "lora r=8 [attention]", "question": "q?"}],
             "budget": "b"}
    assert parse_grid(grid | {"study": study}).spec.study.secondary[0].a == "lora r=64 [use_rslora]"
    with pytest.raises(ConfigError, match=r"'lora r=64' is not a method of this grid's cells \(full, lora r=64 "
                                          r"\[use_rslora\], lora r=8, lora r=8 \[attention\], lora r=8 \[c_attn\+"):
        parse_grid(grid | {"study": study | {"primary": {"a": "lora r=64", "b": "full", "question": "q?"}}})
