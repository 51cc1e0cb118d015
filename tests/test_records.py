"""The record contract's versions: a record written before the contract (no
``schema_version``: version 0) is read through the explicit upgrade; a newer version is
refused with a message naming the version this code reads.
"""

from __future__ import annotations

import json

import pytest

from bashkir_peft.records import (
    SCHEMA_VERSION,
    CellAxes,
    DataManifest,
    GridIndex,
    IndexCell,
    RecordError,
    read_record,
    write_record,
)

INDEX = GridIndex(grid="g", grid_file=None, description=None, corpus=None, data={"fingerprint": "abc"},
                  cells=[IndexCell(**CellAxes(model="tiny-gpt2", method="lora", lora_r=8, seed=42,
                                              label=None).model_dump(),
                                   run_id="r1", run_dir="/runs/g/r1", status="finished", error=None)])
MANIFEST = {"status": "complete", "fingerprint": "abc", "created": "2025-01-01", "params": {}, "corpus": {},
            "langid_version": "1", "counts": {"train": 1}, "cleaning": {}, "drops": [],
            "near_duplicate_clusters": 0, "duplicates": [], "examples": {}, "files": {}, "resources": {},
            "environment": {}}


def test_a_record_is_written_with_its_schema_version_and_read_back(tmp_path):
    path = write_record(tmp_path / "grid.json", INDEX)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION == 1
    assert read_record(path, GridIndex) == INDEX


def test_a_record_without_schema_version_is_read_through_the_upgrade(tmp_path):
    path = tmp_path / "grid.json"
    old = INDEX.model_dump(mode="json")
    del old["schema_version"]
    path.write_text(json.dumps(old))
    assert read_record(path, GridIndex) == INDEX


def test_the_manifest_format_version_becomes_the_schema_version(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST | {"format_version": 1}))
    manifest = read_record(path, DataManifest)
    assert manifest.schema_version == 1 and manifest.fingerprint == "abc"
    path.write_text(json.dumps(MANIFEST))
    with pytest.raises(RecordError, match="manifest without schema_version or format_version 1"):
        read_record(path, DataManifest)


def test_a_newer_version_is_refused_naming_the_version_this_code_reads(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(INDEX.model_dump(mode="json") | {"schema_version": 99}))
    with pytest.raises(RecordError) as err:
        read_record(path, GridIndex)
    assert str(err.value) == f"{path}: schema_version 99 is newer than this code reads (up to 1); update bashkir-peft"


def test_a_version_that_is_not_an_integer_is_refused(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(INDEX.model_dump(mode="json") | {"schema_version": "1"}))
    with pytest.raises(RecordError) as err:
        read_record(path, GridIndex)
    assert str(err.value) == f"{path}: schema_version '1' is not an integer"


def test_a_mistyped_field_is_named(tmp_path):
    path = tmp_path / "grid.json"
    data = INDEX.model_dump(mode="json")
    data["cells"][0]["lora_r"] = "eight"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"grid.json: not a valid GridIndex: field 'cells.0.lora_r'"):
        read_record(path, GridIndex)
