"""The data preparation pipeline end to end on tiny hand-written corpora: what is kept
and dropped, de-duplication before the split, split stability, atomic outputs, bad input."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.data import prepare as dataprep
from bashkir_peft.data import stats
from bashkir_peft.data.folder import load_split, read_manifest, write_presplit_folder
from bashkir_peft.data.overlap import overlap_audit
from bashkir_peft.data.prepare import prepare
from bashkir_peft.errors import DataError
from test_data_text import BASHKIR, RUSSIAN, TATAR

FAST = {"num_proc": 1, "min_chars": 30}
# a handful of documents cannot fill three splits (refused, with the counts): these corpora
# go to train only, except where the split itself is tested
FEW = {"train_fraction": 1.0, "validation_fraction": 0.0, "test_fraction": 0.0}
SPLIT3 = {"train_fraction": 0.8, "validation_fraction": 0.1, "test_fraction": 0.1}


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _docs(n: int, start: int = 0) -> list[dict]:
    """n distinct Bashkir documents (numbers make their shingles differ)."""
    return [{"id": f"d{i}", "source": "test",
             "text": f"Ауылда {i * 7 + 3} кеше йәшәй, улар {i + 1900} йылда бында күсеп килгән. "
                     f"Мәктәптә {i + 11} бала уҡый, ә ҡалаға {i * 3 + 20} саҡрым ҡала."}
            for i in range(start, start + n)]


def _run(tmp_path: Path, records: list[dict], out: str = "out", **kw) -> dict:
    corpus = _write_jsonl(tmp_path / "corpus.jsonl", records)
    return prepare(DataPrepParams(corpus=str(corpus), output_dir=str(tmp_path / out), **{**FAST, **FEW, **kw}))


def _split_of(out: Path) -> dict[str, str]:
    ds = pd.read_parquet(out / "doc_stats.parquet")
    return dict(zip(ds["id"], ds["split"]))


def _all_texts(out: Path) -> dict[str, str]:
    texts = {}
    for s in ("train", "validation", "test"):
        texts.update(dict(zip(*[load_split(out, s)[c] for c in ("id", "text")])))
    return texts


def test_russian_sentence_dropped_bashkir_kept_and_latin_h_fixed(tmp_path):
    mixed = f"{BASHKIR[0]} {RUSSIAN} {BASHKIR[1]}\nУл hыу эсте, hуңынан ҡайтты."
    m = _run(tmp_path, [{"id": "mixed", "text": mixed}, {"id": "ru", "text": RUSSIAN + " " + RUSSIAN}])
    texts = _all_texts(tmp_path / "out")
    assert texts == {"mixed": f"{BASHKIR[0]} {BASHKIR[1]}\nУл һыу эсте, һуңынан ҡайтты."}
    drops = {d.reason: d for d in m.drops}
    assert drops["sentence_rus"].sentences == 3
    assert drops["not_bashkir"].documents == 1
    assert m.cleaning["latin_h"] == 2
    assert RUSSIAN in m.examples["sentence_rus"]


def test_tatar_document_dropped(tmp_path):
    m = _run(tmp_path, [{"id": "tt", "text": " ".join(TATAR)}, *_docs(1)])
    assert set(_all_texts(tmp_path / "out")) == {"d0"}
    assert {d.reason: d.documents for d in m.drops}["not_bashkir"] == 1


def test_only_one_of_two_near_duplicates_survives(tmp_path):
    original = " ".join(BASHKIR)
    twin = " ".join(reversed(BASHKIR)) + " Яңы юл."  # sentence-shuffled copy, one sentence more
    copy = original.upper().replace(",", "")  # exact duplicate after normalization
    m = _run(tmp_path, [{"id": "orig", "text": original}, {"id": "twin", "text": twin},
                        {"id": "copy", "text": copy}, *_docs(3)])
    kept = _all_texts(tmp_path / "out")
    assert len({"orig", "twin", "copy"} & set(kept)) == 1
    assert "twin" in kept  # the longest member represents the cluster
    drops = {d.reason: d.documents for d in m.drops}
    assert drops["exact_duplicate"] == 1 and drops["near_duplicate"] == 1
    assert m.counts["documents_kept"] == 4
    assert sorted((d.dropped, d.kept, d.reason) for d in m.duplicates) == [
        ("copy", "orig", "exact_duplicate"), ("orig", "twin", "near_duplicate")]


def test_split_identical_across_runs_and_stable_when_documents_are_added(tmp_path):
    docs = _docs(40)
    m1 = _run(tmp_path, docs, out="a", **SPLIT3)
    m2 = _run(tmp_path, docs, out="b", **SPLIT3)
    assert m1.fingerprint == m2.fingerprint
    for s in ("train", "validation", "test"):
        assert (tmp_path / "a" / f"{s}.parquet").read_bytes() == (tmp_path / "b" / f"{s}.parquet").read_bytes()
    first = _split_of(tmp_path / "a")
    assert set(first.values()) == {"train", "validation", "test"}
    m3 = _run(tmp_path, _docs(20, start=40) + docs[::-1], out="c", **SPLIT3)  # more documents, other order
    grown = _split_of(tmp_path / "c")
    assert len(grown) == 60
    assert {i: grown[i] for i in first} == first
    assert m3.fingerprint != m1.fingerprint


def test_worker_processes_give_the_same_result(tmp_path):
    docs = _docs(12)
    m1 = _run(tmp_path, docs, out="one")
    m2 = _run(tmp_path, docs, out="two", num_proc=2)
    assert m1.fingerprint == m2.fingerprint


def test_manifest_and_readers(tmp_path):
    m = _run(tmp_path, _docs(10))
    out = tmp_path / "out"
    assert read_manifest(out).fingerprint == m.fingerprint
    assert sum(m.counts[s] for s in ("train", "validation", "test")) == 10
    ds = load_split(out, "train")
    assert ds.column_names == ["id", "source", "text"]
    assert len(ds) == m.counts["train"]
    assert m.params.seed == 42 and m.corpus.kind == "file"
    with pytest.raises(DataError, match="unknown split"):
        load_split(out, "dev")
    (out / "test.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="changed since the manifest"):
        load_split(out, "test")
    (out / "manifest.json").unlink()
    with pytest.raises(DataError, match="no manifest.json"):
        load_split(out, "train")


def test_interrupted_run_keeps_previous_complete_output(tmp_path, monkeypatch):
    m = _run(tmp_path, _docs(6))
    before = (tmp_path / "out" / "manifest.json").read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataprep, "_write_splits", boom)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, _docs(8))
    assert (tmp_path / "out" / "manifest.json").read_bytes() == before
    assert read_manifest(tmp_path / "out").fingerprint == m.fingerprint
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"\n  \n", "is empty"),
    ('{"id": "a", "text": "Һаумы"}\n'.encode() + b'{"id": "b", "text": "\xff\xfe"}\n', r"line 2: invalid UTF-8"),
    ('{"id": "a", "text": "Һаумы"}\n{"id": "b", "text": '.encode(), r"line 2: not valid JSON"),
    ('{"id": "a", "body": "Һаумы"}\n'.encode(), r"line 1: record has no 'text' field \(fields: body, id\)"),
    (b'{"id": "a", "text": 5}\n', r"'text' must be a string"),
    ('["Һаумы"]\n'.encode(), "must be a JSON object"),
])
def test_bad_input_clear_error_and_nothing_written(tmp_path, content, message):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        prepare(DataPrepParams(corpus=str(corpus), output_dir=str(tmp_path / "out"), **FAST))
    assert "\n" not in str(err.value)
    _assert_nothing_written(tmp_path)


def test_all_russian_corpus_is_an_error(tmp_path):
    records = [{"id": f"r{i}", "text": f"{RUSSIAN} Прошло {i} лет с того дня."} for i in range(5)]
    with pytest.raises(DataError, match="nothing left after cleaning and language filtering: 5 documents read"):
        _run(tmp_path, records)
    _assert_nothing_written(tmp_path)


def test_duplicate_ids_and_missing_paths(tmp_path):
    with pytest.raises(DataError, match="duplicate document id 'd0'"):
        _run(tmp_path, _docs(2) + _docs(1))
    _assert_nothing_written(tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        prepare(DataPrepParams(corpus=str(tmp_path / "nope.jsonl"), output_dir=str(tmp_path / "out")))


def test_gzip_parquet_folder_and_txt_sources(tmp_path):
    docs = _docs(4)
    folder = tmp_path / "folder"
    folder.mkdir()
    with gzip.open(folder / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        for r in docs[:2]:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    pd.DataFrame([{"text": r["text"]} for r in docs[2:]]).to_parquet(folder / "b.parquet")
    m = prepare(DataPrepParams(corpus=str(folder), output_dir=str(tmp_path / "o1"), **FAST, **FEW))
    assert m.counts["documents_kept"] == 4 and m.corpus.kind == "folder"
    ids = set(_split_of(tmp_path / "o1"))
    assert {"d0", "d1"} <= ids and sum(i.startswith("sha1:") for i in ids) == 2
    txt = tmp_path / "txt"
    (txt / "sub").mkdir(parents=True)
    (txt / "one.txt").write_text(docs[0]["text"], encoding="utf-8")
    (txt / "sub" / "two.txt").write_text(docs[1]["text"], encoding="utf-8")
    m = prepare(DataPrepParams(corpus=str(txt), output_dir=str(tmp_path / "o2"), **FAST, **FEW))
    assert set(_split_of(tmp_path / "o2")) == {"one.txt", "sub/two.txt"} and m.corpus.kind == "txt"
    (txt / "bad.txt").write_bytes(b"\xff")
    with pytest.raises(DataError, match="bad.txt: invalid UTF-8"):
        prepare(DataPrepParams(corpus=str(txt), output_dir=str(tmp_path / "o3"), **FAST))


def test_hub_source_has_no_silent_fallback(tmp_path):
    with pytest.raises(DataError, match="cannot read Hub dataset 'BashkirNLPWorld/bashkir-web-corpus'"):
        prepare(DataPrepParams(corpus="hub:BashkirNLPWorld/bashkir-web-corpus", output_dir=str(tmp_path / "out")))
    _assert_nothing_written(tmp_path)


def test_params_validation():
    from bashkir_peft.errors import ConfigError
    from bashkir_peft.yamlio import validate

    with pytest.raises(ConfigError, match="must sum to 1"):
        validate(DataPrepParams, {"train_fraction": 0.9}, "params")
    with pytest.raises(ConfigError, match="near_dup_threshold"):
        validate(DataPrepParams, {"near_dup_threshold": 1.5}, "params")
    with pytest.raises(ConfigError, match="unknown key"):
        validate(DataPrepParams, {"corpus_path": "x"}, "params")


def test_cli_prepare_data(tmp_path, capsys):
    from bashkir_peft.cli import main

    corpus = _write_jsonl(tmp_path / "corpus.jsonl", _docs(5))
    assert main(["prepare-data", str(corpus), str(tmp_path / "out"), "--set", "min_chars=30",
                 "--set", "num_proc=1", "--set", "seed=7", "--set", "validation_fraction=0.2",
                 "--set", "test_fraction=0"]) == 0
    assert read_manifest(tmp_path / "out").params.seed == 7
    assert "fingerprint" in capsys.readouterr().out
    assert main(["prepare-data", str(tmp_path / "nope.jsonl"), str(tmp_path / "o2")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_paper_mode_keeps_every_document_as_read_and_counts_exact_duplicates(tmp_path):
    original = " ".join(BASHKIR)
    records = [{"id": "orig", "text": original},
               {"id": "twin", "text": " ".join(reversed(BASHKIR)) + " Яңы юл."},  # near duplicate
               {"id": "copy", "text": original.upper().replace(",", "")},  # exact duplicate (same words)
               {"id": "ru", "text": RUSSIAN},  # not Bashkir
               {"id": "short", "text": "Эйе."},  # shorter than min_chars
               {"id": "html", "text": "<div>Ауыл</div>\u00ad  ҡала"},  # markup and a soft hyphen, uncleaned
               {"text": "Бер үк текст ике тапҡыр."}, {"text": "Бер үк текст ике тапҡыр."},  # id-less repeat
               *_docs(3)]
    m = _run(tmp_path, records, data_mode="paper")
    kept = _all_texts(tmp_path / "out")
    assert len(kept) == len(records) == m.counts["documents_kept"]
    assert {kept[r["id"]] for r in records if "id" in r} == {r["text"] for r in records if "id" in r}  # as read
    repeat = [k for k in kept if k.startswith("sha1:")]
    assert len(repeat) == 2 and any(k.endswith("#2") for k in repeat)
    assert all(d.documents in (0, None) and d.sentences in (0, None) for d in m.drops)
    assert m.cleaning == {} and m.near_duplicate_clusters == 0
    # exact-duplicate removal is a separate option, and counted
    m = _run(tmp_path, records, out="dedup", data_mode="paper", drop_exact_duplicates=True)
    kept = _all_texts(tmp_path / "dedup")
    assert len(kept) == len(records) - 2 and "twin" in kept and {"orig", "copy"} & set(kept)
    assert {d.reason: d.documents for d in m.drops}["exact_duplicate"] == 2
    assert "**Data mode: paper**" in stats.data_card(tmp_path / "dedup")
    assert "exact duplicates removed" in stats.data_card(tmp_path / "dedup")


def _naive_overlap(train: list[str], test: list[str], n: int) -> tuple[int, int]:
    def grams(t):
        w = re.findall(r"\w+", t.lower())
        return [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]

    seen = {g for t in train for g in grams(t)}
    all_test = [g for t in test for g in grams(t)]
    return len(all_test), sum(g in seen for g in all_test)


def test_overlap_audit_counts_test_ngrams_found_in_train(tmp_path):
    shared = "Был ҡала тарихы тураһында бик күп ҡыҙыҡлы хәбәрҙәр һөйләй торған оло кеше йәшәгән ине"  # 14 words
    train = [d["text"] for d in _docs(6)] + [f"Башта {shared}. Аҙаҡ башҡа һүҙ."]
    test = {"news": [f"Яңылыҡ: {shared.upper()}!", _docs(1, start=50)[0]["text"]],
            "wiki": [_docs(1, start=60)[0]["text"], "ҡыҫҡа"]}

    def frame(texts: list[tuple[str, str]], prefix: str) -> pd.DataFrame:
        return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(texts))], "source": [s for s, _ in texts],
                             "text": [t for _, t in texts]})

    test_rows = [(s, t) for s, ts in test.items() for t in ts]
    write_presplit_folder(tmp_path, {"train": frame([("x", t) for t in train], "tr"),
                                     "validation": frame([], "v"), "test": frame(test_rows, "te")},
                          "fp", {"kind": "file", "location": "x"})
    rows = {r["source"]: r for r in overlap_audit(tmp_path, n=13)}
    assert set(rows) == {"news", "wiki", "all"}
    for source, texts in (*test.items(), ("all", [t for _, t in test_rows])):
        total, found = _naive_overlap(train, texts, 13)
        assert (rows[source]["test_ngrams"], rows[source]["ngrams_in_train"]) == (total, found)
    assert rows["news"]["ngrams_in_train"] == 2  # the shared 14 words hold 2 13-grams, case ignored
    assert rows["news"]["documents_with_overlap"] == 1 and rows["wiki"]["ngrams_in_train"] == 0
    assert rows["all"]["share_in_train"] == pytest.approx(2 / rows["all"]["test_ngrams"])
    assert rows["all"]["test_documents"] == 4
