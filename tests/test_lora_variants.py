"""LoRA variants as options (issue 30): ``lora_options`` are validated against peft's own
``LoraConfig`` (one line for an unknown key or value), reach the ``LoraConfig`` peft builds on
two architectures (GPT-2's Conv1D, Llama's Linear), give the trainable-parameter count peft
computes (the planner's count agrees), and DoRA, rsLoRA and PiSSA runs train, save and reload
to the logits of the model in memory; QLoRA with LoftQ does so on a GPU (peft computes LoftQ
with CUDA) and is refused on the CPU with one line."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from bashkir_peft.config.lora import changes_base_weights, check_lora_options, lora_variant_label
from bashkir_peft.config.train import TrainParams
from bashkir_peft.errors import ConfigError
from bashkir_peft.models.device import choose_device
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.lora import apply_lora, count_parameters, lora_parameter_count
from bashkir_peft.models.trained import load_trained
from bashkir_peft.names import label_parts, method_label
from bashkir_peft.train.run import run_training
from test_train import _logits, _run, data_dir  # noqa: F401 - data_dir is a fixture

TARGETS = {"tiny-gpt2": ["c_attn", "c_proj", "c_fc"],
           "tiny-llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}

OPTIONS = [
    {"use_dora": True},
    {"use_rslora": True},
    {"init_lora_weights": "pissa"},
    {"init_lora_weights": "olora"},
    {"init_lora_weights": "gaussian"},
    {"layers_to_transform": [1]},
    {"use_dora": True, "use_rslora": True, "layers_to_transform": [0]},
]


@pytest.mark.parametrize("bad, says", [
    ({"use_dorra": True}, "did you mean 'use_dora'"),
    ({"init_lora_weights": "pisa"}, "'pisa' is not one of peft's values"),
    ({"r": 16}, "set by this project (lora_r)"),
    ({"init_lora_weights": "eva"}, "pass over training data"),
    ({"init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4}}, "QLoRA's initialisation"),
    ({"layers_pattern": "layers"}, "LoraConfig refuses"),  # peft: layers_pattern needs layers_to_transform
])
def test_bad_options_fail_with_one_line(bad, says):
    with pytest.raises(ValueError, match=None) as err:
        check_lora_options(bad, "lora")
    assert says in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValidationError):
        TrainParams(method="lora", lora_options=bad)


def test_options_are_refused_for_full_fine_tuning():
    with pytest.raises(ValidationError, match="not full fine-tuning"):
        TrainParams(method="full", lora_options={"use_dora": True})


@pytest.mark.parametrize("model_name", sorted(TARGETS))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: lora_variant_label(o))
def test_each_option_reaches_peft_and_the_count_is_peft_s(model_name, options):
    check_lora_options(options, "lora")
    model = load_model(model_name, "full", placement=choose_device("cpu")).model
    count = lora_parameter_count(model, TARGETS[model_name], 4, options)
    net = apply_lora(model, TARGETS[model_name], lora_r=4, lora_alpha=8, options=options)
    config = net.peft_config["default"]
    for key, value in options.items():
        assert getattr(config, key) == value, key
    assert count_parameters(net)["trainable_params"] == count


def test_method_label_names_the_variant():
    label = method_label("lora", 64, variant=lora_variant_label({"use_dora": True, "init_lora_weights": "pissa"}))
    assert label == "lora r=64 [use_dora, init_lora_weights=pissa]"
    assert label_parts(label) == ("lora", 64)
    assert method_label("lora", 8, variant=lora_variant_label(None)) == "lora r=8"


@pytest.mark.parametrize("options", [{"use_dora": True}, {"use_rslora": True}, {"init_lora_weights": "pissa"}],
                         ids=lambda o: lora_variant_label(o))
def test_variant_trains_saves_and_reloads_to_equal_logits(options, data_dir, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    record, cap = _run(data_dir, out, model="tiny-llama", method="lora", lora_options=options, max_steps=2,
                       eval_steps=2, save_steps=2)
    assert record.status == "finished" and record.params.lora_options == options
    saved = load_trained(out).model
    assert getattr(saved.peft_config["default"], "use_dora") == bool(options.get("use_dora"))
    if changes_base_weights(options):  # saved as a plain LoRA of rank 2r on the original base
        assert saved.peft_config["default"].r == 2 * record.params.lora_r
    torch.testing.assert_close(_logits(saved, cap.batch.to(saved.device)), cap.logits, rtol=1e-5, atol=1e-5)


def test_loftq_on_the_cpu_is_refused_with_one_line(data_dir, tmp_path):  # noqa: F811
    options = {"init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4, "loftq_iter": 1}}
    with pytest.raises(ConfigError, match="LoftQ initialisation needs CUDA"):  # the run: before loading weights
        run_training(TrainParams(model="tiny-llama", method="qlora", device="cpu", lora_options=options,
                                 data_dir=str(data_dir), output_dir=str(tmp_path / "loftq")))
    model = load_model("tiny-llama", "qlora", placement=choose_device("cpu", "qlora")).model
    with pytest.raises(ConfigError, match="LoftQ initialisation needs CUDA"):  # and the adapter function itself
        apply_lora(model, TARGETS["tiny-llama"], lora_r=4, options=options)


@pytest.mark.gpu
def test_qlora_with_loftq_trains_saves_and_reloads(data_dir, tmp_path):  # noqa: F811
    options = {"init_lora_weights": "loftq", "loftq_config": {"loftq_bits": 4, "loftq_iter": 1}}
    record, cap = _run(data_dir, tmp_path / "loftq", model="tiny-llama", method="qlora", lora_options=options)
    assert record.status == "finished"
    saved = load_trained(tmp_path / "loftq").model
    torch.testing.assert_close(_logits(saved, cap.batch.to(saved.device)), cap.logits, rtol=1e-5, atol=1e-5)
