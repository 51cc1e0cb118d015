"""The SIB-200 reader: every row of the shared files, parallel sides, clear errors."""

from __future__ import annotations

import pytest

from bashkir_peft.data.sib200 import SIB200_LANGUAGES, read_sib200_labels, read_sib200_split
from bashkir_peft.errors import DataError

COUNTS = {"train": 701, "dev": 99, "test": 204}


@pytest.fixture(scope="module")
def sib200_dir(shared_dir):
    return shared_dir / "eval" / "sib200"


@pytest.mark.parametrize("split", sorted(COUNTS))
def test_every_row_of_every_language_is_read_and_the_sides_are_parallel(sib200_dir, split):
    frames = {lang: read_sib200_split(sib200_dir / lang, split) for lang in SIB200_LANGUAGES}
    for lang, frame in frames.items():
        assert len(frame) == COUNTS[split], lang
        assert frame["text"].str.len().min() > 0
    bak = frames["bak_Cyrl"]
    for lang in ("eng_Latn", "rus_Cyrl"):
        assert frames[lang]["index_id"].tolist() == bak["index_id"].tolist()
        assert frames[lang]["category"].tolist() == bak["category"].tolist()
    # Quoting is off: a text with a double quote keeps it.
    assert frames["eng_Latn"]["text"].str.contains('"').any() or split != "train"


def test_labels_are_the_seven_topics(sib200_dir):
    labels = read_sib200_labels(sib200_dir / "eng_Latn")
    assert len(labels) == 7 and "science/technology" in labels


def _write_language(folder, body):
    folder.mkdir()
    (folder / "labels.txt").write_text("travel\nsports\n", encoding="utf-8")
    (folder / "test.tsv").write_text("index_id\tcategory\ttext\n" + body, encoding="utf-8")
    return folder


def test_bad_input_gets_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="test.tsv: not found"):
        read_sib200_split(tmp_path / "missing", "test")
    two_fields = _write_language(tmp_path / "b", "1\ttravel\tok\n2\tsports\n")
    with pytest.raises(DataError, match=r"test.tsv:3: 2 fields"):
        read_sib200_split(two_fields, "test")
    unknown = _write_language(tmp_path / "c", "1\tcooking\ttext\n")
    with pytest.raises(DataError, match="category 'cooking'"):
        read_sib200_split(unknown, "test")
    with pytest.raises(DataError, match="unknown SIB-200 split"):
        read_sib200_split(unknown, "validation")
