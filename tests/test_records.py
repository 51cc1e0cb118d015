"""The record contract: every field typed, versions read through explicit upgrades. Records of
version 1 (as the code before the typed contract wrote them, ``tests/fixtures/records-v1``) and of
version 0 (no ``schema_version``) are read through the upgrades; a newer version is refused; a
field that does not match, at any depth, is one line naming the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bashkir_peft.records import (
    SCHEMA_VERSION,
    CellAxes,
    CellRecord,
    DataManifest,
    DataPrepRecord,
    DownstreamRecord,
    EvalRecord,
    GenerateRecord,
    GridIndex,
    IndexCell,
    RecordError,
    TrainRecord,
    read_record,
    write_record,
)
from bashkir_peft.stages import RUN_RECORDS, STAGES

V1 = Path(__file__).parent / "fixtures" / "records-v1"
KINDS = {"train.json": TrainRecord, "eval.json": EvalRecord, "generate.json": GenerateRecord,
         "downstream.json": DownstreamRecord, "grid_cell.json": CellRecord, "grid.json": GridIndex,
         "data_prep.json": DataPrepRecord, "manifest.json": DataManifest}
INDEX = GridIndex(grid="g", grid_file=None, description=None, corpus=None, data=None,
                  cells=[IndexCell(**CellAxes(model="tiny-gpt2", method="lora", lora_r=8, seed=42,
                                              label=None).model_dump(),
                                   run_id="r1", run_dir="/runs/g/r1", status="finished", error=None)])


def test_a_record_is_written_with_its_schema_version_and_read_back(tmp_path):
    path = write_record(tmp_path / "grid.json", INDEX)
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION == 2
    assert read_record(path, GridIndex) == INDEX


def test_every_stage_record_of_a_run_folder_comes_from_the_stage_table():
    assert RUN_RECORDS == {"train.json": TrainRecord, "eval.json": EvalRecord, "generate.json": GenerateRecord,
                           "downstream.json": DownstreamRecord}
    assert {s.record[1] for s in STAGES.values() if s.record} == set(RUN_RECORDS.values()) | {DataManifest}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_version_1_record_reads_through_the_upgrade_and_writes_back_as_version_2(tmp_path, name):
    old = json.loads((V1 / name).read_text())
    assert old["schema_version"] == 1
    record = read_record(V1 / name, KINDS[name])
    again = read_record(write_record(tmp_path / name, record), KINDS[name])
    assert again == record and json.loads((tmp_path / name).read_text())["schema_version"] == 2


@pytest.mark.parametrize("name", sorted(set(KINDS) - {"manifest.json"}))
def test_a_version_0_record_reads_through_both_upgrades(tmp_path, name):
    old = json.loads((V1 / name).read_text())
    del old["schema_version"]
    (tmp_path / name).write_text(json.dumps(old))
    assert read_record(tmp_path / name, KINDS[name]) == read_record(V1 / name, KINDS[name])


def test_the_upgrade_to_version_2_keeps_one_learning_rate_and_types_what_was_free():
    old = {n: json.loads((V1 / n).read_text()) for n in KINDS}
    train = read_record(V1 / "train.json", TrainRecord)
    # version 1 kept the resolved rate beside params.learning_rate None; version 2 has one, in params
    assert old["train.json"]["params"]["learning_rate"] is None and old["train.json"]["learning_rate"] == 2e-4
    assert train.params.learning_rate == 2e-4 and "learning_rate" not in TrainRecord.model_fields
    assert train.cost.peak_rss_mib == old["train.json"]["cost"]["peak_rss_mib"]
    assert train.losses.eval[0].bits_per_byte == old["train.json"]["losses"]["eval"][0]["bits_per_byte"]
    assert train.data.train.blocks == old["train.json"]["data"]["train"]["blocks"]
    assert train.environment.git.commit == old["train.json"]["environment"]["git"]["commit"]
    # a generation record's copy of the training parameters gets the rate its run used
    assert read_record(V1 / "generate.json", GenerateRecord).run.params.learning_rate == 2e-4
    # the downstream cost's per-shot keys become one mapping, shots -> seconds
    cost = read_record(V1 / "downstream.json", DownstreamRecord).cost
    assert cost.in_context_s == {0: old["downstream.json"]["cost"]["in_context_0_shot_s"],
                                 1: old["downstream.json"]["cost"]["in_context_1_shot_s"]}
    # a parameter validator that looks at the machine does not judge what a record says was run
    entry = read_record(V1 / "eval.json", EvalRecord).evaluations["rolling/sib200-eng"]
    assert entry.params.external.path == "../shared/eval/sib200/eng_Latn" and entry.data.external.documents == 4


def test_a_renamed_nested_field_is_one_line_naming_the_file_and_the_field(tmp_path):
    data = json.loads((V1 / "train.json").read_text())
    data["cost"]["peak_rss"] = data["cost"].pop("peak_rss_mib")
    path = tmp_path / "train.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as err:
        read_record(path, TrainRecord)
    assert str(err.value) == f"{path}: not a valid TrainRecord: field 'cost.peak_rss_mib': missing (and 1 more)"
    assert "\n" not in str(err.value)


def test_a_renamed_field_deep_in_an_evaluation_is_named(tmp_path):
    data = json.loads((V1 / "eval.json").read_text())
    data["evaluations"]["rolling/test"]["environment"]["hardware"]["cores"] = 2
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"eval.json: not a valid EvalRecord: field "
                                          r"'evaluations.rolling/test.environment.hardware.cores': unknown field"):
        read_record(path, EvalRecord)


def test_the_manifest_format_version_becomes_the_schema_version(tmp_path):
    old = json.loads((V1 / "manifest.json").read_text())
    del old["schema_version"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(old | {"format_version": 1}))
    assert read_record(path, DataManifest) == read_record(V1 / "manifest.json", DataManifest)
    path.write_text(json.dumps(old))
    with pytest.raises(RecordError, match="manifest without schema_version or format_version 1"):
        read_record(path, DataManifest)


def test_a_newer_version_is_refused_naming_the_version_this_code_reads(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(INDEX.model_dump(mode="json") | {"schema_version": 99}))
    with pytest.raises(RecordError) as err:
        read_record(path, GridIndex)
    assert str(err.value) == f"{path}: schema_version 99 is newer than this code reads (up to 2); update bashkir-peft"


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
