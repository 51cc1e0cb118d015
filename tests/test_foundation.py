"""Foundation: registry, the loading function, LoRA wrapping on every architecture,
clear errors, and the environment files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bashkir_peft.errors import ConfigError, ModelNotFoundError
from bashkir_peft.models.loading import load_model, resolve_model
from bashkir_peft.models.lora import apply_lora, count_parameters
from bashkir_peft.models.registry import load_registry

REPO = Path(__file__).resolve().parents[1]

# LoRA-wrapped modules per transformer layer, by architecture (read off the modeling code:
# GPT-2 attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj; Phi q/k/v/dense + fc1/fc2;
# Llama-style q/k/v/o + gate/up/down).
WRAPPED_PER_LAYER = {"gpt2": 4, "phi": 6, "qwen2": 7, "llama": 7, "mistral": 7}
TINY = ["tiny-gpt2", "tiny-phi", "tiny-qwen2", "tiny-llama", "tiny-mistral"]


def _in_out(module) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or a GPT-2 Conv1D (weight stored in x out)."""
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    rows, cols = module.weight.shape  # transformers Conv1D: weight (in, out)
    return rows, cols


@pytest.mark.parametrize("name", TINY)
def test_lora_wraps_expected_modules_with_analytic_parameter_count(name):
    loaded = load_model(name, "lora")
    base, entry = loaded.model, loaded.resolved.entry
    names = dict(base.named_modules())
    matched = {t: [n for n in names if n.split(".")[-1] == t] for t in entry.target_modules}
    for target, hits in matched.items():
        assert hits, f"{name}: target module {target} matches nothing"
    r = 8
    expected_params = sum(r * sum(_in_out(names[n])) for hits in matched.values() for n in hits)
    n_layers = base.config.num_hidden_layers

    model = apply_lora(base, entry.target_modules, lora_r=r, lora_alpha=16, lora_dropout=0.0)
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")]
    assert len(wrapped) == WRAPPED_PER_LAYER[entry.model_type] * n_layers
    counts = count_parameters(model)
    assert counts["trainable_params"] == expected_params
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_smollm2_offline_knows_paris():
    loaded = load_model("smollm2-135m", "full")
    model, tokenizer = loaded.model, loaded.tokenizer
    assert loaded.resolved.source == "gguf"
    assert "Q4_1" in loaded.resolved.notes[0]
    enc = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text


def test_registry_has_the_papers_seven_models_and_tiny_models():
    reg = load_registry()
    hub_ids = {e.hub_id for e in reg.models.values()}
    for hub_id in ["distilbert/distilgpt2", "openai-community/gpt2", "openai-community/gpt2-medium",
                   "microsoft/phi-2", "Qwen/Qwen2.5-7B", "deepseek-ai/deepseek-llm-7b-base",
                   "mistralai/Mistral-7B-v0.1"]:
        assert hub_id in hub_ids
    assert {e.model_type for n, e in reg.models.items() if e.source == "tiny"} == set(WRAPPED_PER_LAYER)
    assert not any(e.trust_remote_code for e in reg.models.values())
    for e in reg.models.values():  # the tokenizers root is never written into the registry
        assert e.tokenizer is None or "/" not in e.tokenizer


def test_target_modules_are_the_architectures_row():
    reg = load_registry()
    assert set(reg.target_modules) == set(WRAPPED_PER_LAYER)
    assert reg.target_modules["gpt2"] == ["c_attn", "c_proj", "c_fc"]
    for name, e in reg.models.items():
        assert e.target_modules == reg.target_modules[e.model_type]
        assert reg.get(name).target_modules == reg.target_modules[e.model_type]


def test_unpinned_revision_is_said():
    resolved = resolve_model("gpt2")
    assert resolved.revision == "unpinned" and resolved.location == "openai-community/gpt2"


def test_unknown_registry_name_is_one_clear_line():
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model("gpt-5-bashkir")
    msg = str(err.value)
    assert "\n" not in msg and "registry names" in msg and "tiny-gpt2" in msg


def test_missing_local_folder():
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model("./no/such/model")


def test_unreachable_hub_id_says_how_to_use_a_local_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as err:
        load_model("someone/not-cached-model-xyz", "full")
    assert "pass DIR as the model" in str(err.value)


def test_pickle_weights_refused_without_opt_in(tmp_path):
    model = load_model("tiny-gpt2", "full").model
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # pickle weights only
    with pytest.raises(ModelNotFoundError, match="cannot load model weights"):
        load_model(str(tmp_path), "full")


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="method must be one of"):
        load_model("tiny-gpt2", "prefix-tuning")


def _cli(args, env_extra, tmp_path):
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "bashkir_peft.cli", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)


ROW = "target_modules:\n  gpt2: [c_attn]\nattention_modules:\n  gpt2: [c_attn]\n"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("models:\n  x: [unclosed\n", r"malformed YAML \(line \d+, column \d+\)"),
        (ROW + "models:\n  x:\n    source: hub\n    hub_id: a/b\n    model_type: gpt2\n"
         "    context_length: 10\n    colour: red\n", r"models\.x\.colour: unknown key"),
        (ROW + "models:\n  x:\n    source: hub\n    hub_id: a/b\n    model_type: gpt2\n"
         "    context_length: -5\n", r"models\.x\.context_length: Input should be greater than 0"),
        (ROW + "models:\n  x:\n    source: hub\n    hub_id: a/b\n    model_type: gpt2\n"
         "    target_modules: [c_attn]\n    context_length: 10\n", r"models\.x\.target_modules: unknown key"),
        (ROW + "models:\n  x:\n    source: hub\n    hub_id: a/b\n    model_type: bert\n"
         "    context_length: 10\n", r"models\.x\.model_type 'bert' has no row in target_modules"),
        ("target_modules:\n  gpt2: []\nmodels: {}\n", r"target_modules\.gpt2: List should have at least 1 item"),
        ("target_modules:\n  gpt2: [c_attn]\n  phi: [dense]\nattention_modules:\n  gpt2: [c_attn]\nmodels: {}\n",
         r"attention_modules: no row for model_type phi"),
    ],
)
def test_malformed_registry_gives_one_error_line(tmp_path, content, expected):
    (tmp_path / "models.yaml").write_text(content)
    proc = _cli(["models"], {"BASHKIR_PEFT_PARAMS": str(tmp_path)}, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(expected, lines[0]), proc.stderr


def _declared_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements if r.strip() and not r.startswith("-")}


def test_environment_yml_declares_the_same_packages_as_pyproject():
    import tomllib
    import yaml

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))]
    assert _declared_names(pip_section) | _declared_names(conda) == _declared_names(declared)
