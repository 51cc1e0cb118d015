"""The weight-change spectrum (Biderman et al. 2024): energy ranks of constructed spectra are
exact; a model pair with one known low-rank change gives that rank on that matrix and zero
elsewhere; a tiny full fine-tuning run writes one row per adapted matrix (values equal to a
direct SVD of final − base), records it, and its results bundle carries it; the CLI recomputes
the same table for a finished run and refuses what is not a full run in one line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from bashkir_peft.cli import main
from bashkir_peft.config.train import TrainParams
from bashkir_peft.models.loading import load_model
from bashkir_peft.models.spectrum import energy_rank, matrix_spectrum, weight_change_spectrum
from bashkir_peft.records import WEIGHT_SPECTRUM_COLUMNS, RunFiles, read_weight_spectrum, write_record
from bashkir_peft.report.bundle import read_bundle, write_bundle
from bashkir_peft.train.run import run_training
from report_synth import _cell
from test_train import make_data_dir

LLAMA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _with_spectrum(singular_values: list[float], m: int, n: int, seed: int = 0) -> torch.Tensor:
    """U diag(s) V^T with random orthonormal U (m x k) and V (n x k): a matrix whose singular
    values are exactly ``singular_values`` (up to rounding)."""
    g = torch.Generator().manual_seed(seed)
    k = len(singular_values)
    u, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return u @ torch.diag(torch.tensor(singular_values, dtype=torch.float64)) @ v.T


# --- the measure on constructed matrices -------------------------------------------


def test_energy_ranks_of_a_constructed_spectrum():
    # energies 16, 9, 4, 1 (total 30): cumulative shares 0.533, 0.833, 0.967, 1.0
    delta = _with_spectrum([4.0, 3.0, 2.0, 1.0], 40, 24)
    base = _with_spectrum([10.0] * 24, 40, 24, seed=1)  # ||W_base||_F = 10 sqrt(24)
    row = matrix_spectrum(delta.float(), base)
    assert (row["rows"], row["cols"], row["full_rank"]) == (40, 24, 24)
    assert (row["rank_50"], row["rank_90"], row["rank_99"]) == (1, 3, 4)
    assert row["frobenius_norm"] == pytest.approx(math.sqrt(30), rel=1e-6)
    assert row["spectral_norm"] == pytest.approx(4.0, rel=1e-6)
    assert row["stable_rank"] == pytest.approx(30 / 16, rel=1e-6)
    assert row["relative_norm"] == pytest.approx(math.sqrt(30) / (10 * math.sqrt(24)), rel=1e-6)


def test_a_share_exactly_on_a_threshold_is_reached_despite_rounding():
    # four equal singular values: 50 % of the energy is held by exactly 2 of them
    row = matrix_spectrum(_with_spectrum([1.0, 1.0, 1.0, 1.0], 30, 30, seed=2))
    assert (row["rank_50"], row["rank_90"], row["rank_99"]) == (2, 4, 4)
    assert row["stable_rank"] == pytest.approx(4.0, rel=1e-9)
    assert energy_rank([2.0, 0.0], 1.0) == 1


def test_a_zero_change_has_no_energy_rank():
    row = matrix_spectrum(torch.zeros(8, 5))
    assert (row["rank_50"], row["rank_90"], row["rank_99"], row["frobenius_norm"]) == (0, 0, 0, 0.0)
    assert math.isnan(row["stable_rank"]) and math.isnan(row["relative_norm"])
    with pytest.raises(ValueError, match="share"):
        energy_rank([1.0], 0.0)
    with pytest.raises(ValueError, match="matrix"):
        matrix_spectrum(torch.zeros(3))


def test_a_known_low_rank_change_of_one_matrix_is_found_there_only():
    base = load_model("tiny-llama", "full", dtype="float32").model
    tuned = load_model("tiny-llama", "full", dtype="float32").model
    target = tuned.model.layers[1].mlp.up_proj.weight  # 64 x 32
    with torch.no_grad():
        target += _with_spectrum([3.0, 1.0], *target.shape, seed=3).float()
    threads = torch.get_num_threads()
    table = weight_change_spectrum(base, tuned, LLAMA_MODULES)
    assert torch.get_num_threads() == threads  # the SVDs' one thread is not left behind
    assert len(table) == 2 * 7 and list(table.columns) == list(WEIGHT_SPECTRUM_COLUMNS)
    row = table.set_index("module").loc["model.layers.1.mlp.up_proj"]
    assert (row["layer"], row["matrix"], row["rows"], row["cols"]) == (1, "mlp.up_proj", 64, 32)
    assert (row["rank_50"], row["rank_90"], row["rank_99"]) == (1, 1, 2)  # energies 9, 1: shares 0.9, 1.0
    assert row["stable_rank"] == pytest.approx(10 / 9, rel=1e-5)
    others = table[table["module"] != "model.layers.1.mlp.up_proj"]
    assert (others["rank_99"] == 0).all() and (others["frobenius_norm"] == 0).all()
    assert set(table["matrix"]) == {f"self_attn.{m}" for m in LLAMA_MODULES[:4]} | {f"mlp.{m}" for m in LLAMA_MODULES[4:]}


# --- a tiny full fine-tuning run ---------------------------------------------------


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, corpus_dir) -> Path:
    root = tmp_path_factory.mktemp("spectrum")
    data_dir = make_data_dir(corpus_dir, root / "data")
    run_dir = root / "grid" / "smoke-full"
    params = TrainParams(model="tiny-llama", method="full", block_size=16, per_device_train_batch_size=4,
                         per_device_eval_batch_size=16, max_steps=2, eval_steps=2, save_steps=2, logging_steps=1,
                         max_eval_documents=2, learning_rate=1e-3, data_dir=str(data_dir), output_dir=str(run_dir))
    record = run_training(params)
    assert record.status == "finished"
    return run_dir


def test_full_fine_tuning_writes_one_row_per_adapted_matrix(full_run):
    table = read_weight_spectrum(full_run / RunFiles.WEIGHT_SPECTRUM)
    tuned = load_model(str(full_run / RunFiles.FINAL), "full", dtype="float32").model
    base = load_model("tiny-llama", "full", dtype="float32").model
    expected = [n for n, mod in tuned.named_modules() if n.rsplit(".", 1)[-1] in LLAMA_MODULES]
    assert list(table["module"]) == expected and len(expected) == 2 * 7
    record = json.loads((full_run / RunFiles.TRAIN).read_text())
    assert record["weight_spectrum"]["file"] == RunFiles.WEIGHT_SPECTRUM
    assert record["weight_spectrum"]["matrices"] == len(table)
    # every value is the spectrum of final - base, recomputed directly
    name = "model.layers.0.self_attn.k_proj"
    w1 = dict(tuned.named_parameters())[name + ".weight"].detach().double()
    w0 = dict(base.named_parameters())[name + ".weight"].detach().double()
    s = torch.linalg.svdvals(w1 - w0)
    row = table.set_index("module").loc[name]
    assert row["frobenius_norm"] > 0
    assert row["frobenius_norm"] == pytest.approx(float(s.norm()), rel=1e-9)
    assert row["stable_rank"] == pytest.approx(float((s ** 2).sum() / s[0] ** 2), rel=1e-9)
    share = torch.cumsum(s ** 2, 0) / (s ** 2).sum()
    assert row["rank_90"] == int((share < 0.9).sum()) + 1


def test_the_results_bundle_carries_the_spectrum(full_run, tmp_path):
    grid_dir = full_run.parent
    # a run folder the bundle picks up: the grid runner's record of a finished full cell
    write_record(full_run / RunFiles.CELL, _cell(full_run, "finished", "tiny-gpt2", "full", None, 1, {"train": "finished"}))
    archive = tmp_path / "grid-results.tar.gz"
    write_bundle(grid_dir, archive, "grid")
    _, _, files = read_bundle(archive)
    key = f"{full_run.name}/{RunFiles.WEIGHT_SPECTRUM}"
    assert files[key] == (full_run / RunFiles.WEIGHT_SPECTRUM).read_bytes()
    assert not any(k.startswith(f"{full_run.name}/{RunFiles.FINAL}/") for k in files)


def test_the_cli_recomputes_the_spectrum_of_a_finished_run(full_run, tmp_path, capsys):
    out = tmp_path / "again.parquet"
    assert main(["spectrum", str(full_run), "--out", str(out)]) == 0
    assert "14 matrices" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(full_run / RunFiles.WEIGHT_SPECTRUM))


def test_the_cli_refuses_what_is_not_a_finished_full_run(full_run, tmp_path, capsys):
    assert main(["spectrum", str(tmp_path)]) == 2
    assert "no train.json" in capsys.readouterr().err
    lora = tmp_path / "lora"
    shutil.copytree(full_run, lora, ignore=shutil.ignore_patterns(RunFiles.FINAL))
    (lora / RunFiles.FINAL).mkdir()
    record = json.loads((lora / RunFiles.TRAIN).read_text())
    record["params"]["method"] = "lora"
    (lora / RunFiles.TRAIN).write_text(json.dumps(record))
    assert main(["spectrum", str(lora)]) == 2
    err = capsys.readouterr().err
    assert "a lora run" in err and len(err.strip().splitlines()) == 1
