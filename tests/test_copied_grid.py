"""Copies and paths (issue 31): a grid folder copied elsewhere (``cp -a``) reports its own
data, not the folder its cells recorded; a model given as a ``../`` path never names a hidden
run folder nor one outside the grid's folder."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from bashkir_peft.config.grid import Cell
from bashkir_peft.names import NAME_PATTERN
from bashkir_peft.records import DataFiles, GridFiles, RunFiles
from test_faults import cli


def test_copied_grid_reports_its_own_data(smoke_grid, smoke_copy, capfd):
    """``smoke_copy`` is a copy of the session's grid folder: its cells record the original's
    data folder. Its own data's fertility table is changed; the report must show the copy's."""
    base, rec = smoke_copy["cells"]["base"]
    assert rec["data_dir"] == str(smoke_grid["root"] / GridFiles.DATA)  # recorded: the original's
    fertility = smoke_copy["root"] / GridFiles.DATA / DataFiles.FERTILITY
    table = pd.read_parquet(fertility)
    table["fertility"] = table["fertility"] * 2
    table.to_parquet(fertility)

    code, _, err = cli(capfd, "report", smoke_grid["grid_file"], "--runs-dir", smoke_copy["runs"])
    assert code == 0, err
    reported = pd.read_csv(smoke_copy["root"] / "report" / "tables" / "fertility.csv")
    [source] = set(reported["fertility_source"])
    tokenizer, split = re.fullmatch(r"data prep \((\S+) tokenizer, (\S+) split\)", source).groups()
    original = pd.read_parquet(smoke_grid["root"] / GridFiles.DATA / DataFiles.FERTILITY)
    ours = original[(original["tokenizer"] == tokenizer) & (original["split"] == split)]["fertility"].iloc[0] * 2
    assert reported["fertility"].tolist() == pytest.approx([ours] * len(reported), rel=1e-3)
    assert (base / RunFiles.CELL).is_file()


@pytest.mark.parametrize("model, folder", [("../../models/tiny-gpt2", "models_tiny-gpt2"),
                                           ("./.cache/m", "cache_m"), ("..", "model"),
                                           ("owner/name", "owner_name"), ("tiny-gpt2", "tiny-gpt2")])
def test_model_paths_never_name_hidden_or_escaping_run_folders(model, folder):
    slug = Cell(model=model, method="lora", lora_r=4, seed=42).slug
    assert slug == f"{folder}-lora-r4-s42"
    assert re.fullmatch(NAME_PATTERN, slug) and ".." not in slug and "/" not in slug
