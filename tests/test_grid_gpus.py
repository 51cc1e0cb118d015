"""One cell per GPU through submitit's local executor (``--executor gpus``), with the grid
runner's throwaway notebooks: cells run as separate local jobs, each with its own
``CUDA_VISIBLE_DEVICES`` (on the CPU the variable is set all the same, so the pinning is
observable without GPUs), and finish with the same records as the in-process executor."""

from __future__ import annotations

import json

import pytest

import test_grid_runner as gr
from bashkir_peft.cli import main
from bashkir_peft.errors import ConfigError
from bashkir_peft.grid.gpus import gpu_groups
from bashkir_peft.records import RunFiles

# the throwaway training notebook also writes the GPUs its job was given
TRAIN_SEES = gr.BODIES["train"] + """
        import os
        (out / "visible_gpus.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        """


def test_gpu_groups():
    assert gpu_groups([0, 1, 2, 3], 1) == [[0], [1], [2], [3]]
    assert gpu_groups([0, 1, 2], 2) == [[0, 1]]
    with pytest.raises(ConfigError, match="between 1 and the 2 GPU"):
        gpu_groups([0, 1], 3)
    with pytest.raises(ConfigError, match="distinct GPU indices"):
        gpu_groups([0, 0], 1)


def test_cells_run_concurrently_one_per_gpu(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    monkeypatch.setitem(gr.BODIES, "train", TRAIN_SEES)
    nbs = gr.write_notebooks(tmp_path / "notebooks")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    grid = gr.write_grid(tmp_path / "unit.yaml", include=[],
                         matrix={"model": ["tiny-gpt2"], "method": ["lora"], "lora_r": [4], "seed": [1, 2]})
    code = main(["grid", "run", str(grid), "--corpus", str(corpus), "--runs-dir", str(tmp_path / "runs"),
                 "--notebooks", str(nbs), "--executor", "gpus", "--gpus", "3,5"])
    out = capsys.readouterr().out
    assert code == 0, out
    cells = sorted((tmp_path / "runs" / "unit").glob(f"*/{RunFiles.CELL}"))
    assert len(cells) == 2
    assert all(json.loads(c.read_text())["status"] == "finished" for c in cells)
    seen = sorted((c.parent / "visible_gpus.txt").read_text() for c in cells)
    assert seen == ["3", "5"]  # each cell's job had exactly one GPU of its own
    assert out.count("started on GPU") == 2
