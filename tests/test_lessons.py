"""The lessons: each executes with small parameters on a tiny model, ends with an exercise
and a hidden solution, and reads its data only through checksummed files (a local folder
or an http(s) base address)."""

from __future__ import annotations

import functools
import http.server
import json
import threading

import pytest

from bashkir_peft.errors import DataError
from bashkir_peft.lessons import checked_files, lesson_notebooks
from bashkir_peft.names import sha256_file
from conftest import LESSONS_SMALL


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_every_lesson_is_tested_and_ends_with_an_exercise_and_a_hidden_solution():
    assert {nb.stem for nb in lesson_notebooks()} == set(LESSONS_SMALL)
    for nb in lesson_notebooks():
        cells = _cells(nb)
        tags = [c.get("metadata", {}).get("tags", []) for c in cells]
        assert sum("parameters" in t for t in tags) == 1, nb.name
        assert "hide-cell" in tags[-1], f"{nb.name}: the last cell is the hidden solution"
        assert "## Try it" in "".join(cells[-2]["source"]), f"{nb.name}: an exercise precedes the solution"
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code"), f"{nb.name}: commit without outputs"


@pytest.mark.parametrize("stem", sorted(LESSONS_SMALL))
def test_lesson_executes_with_small_parameters(stem, executed_lessons):
    folder, seconds = executed_lessons
    assert seconds[stem]["wall_s"] > 0 and seconds[stem]["cpu_s"] > 0
    outputs = [o for c in _cells(folder / f"{stem}.ipynb") for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("text", "")) for o in outputs)
    assert "Traceback" not in text and "Warning" not in text, text[:500]
    if stem == "01_lora_from_scratch":
        assert "The hand-written layer and peft's agree." in text


def test_checked_files_reads_a_local_folder_and_refuses_other_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("сәләм\n", encoding="utf-8")
    good = {"a/x.txt": sha256_file(tmp_path / "a" / "x.txt")}
    assert checked_files(str(tmp_path), good) == tmp_path
    with pytest.raises(DataError, match="SHA-256"):
        checked_files(str(tmp_path), {"a/x.txt": "0" * 64})
    with pytest.raises(DataError, match="not found"):
        checked_files(str(tmp_path), {"a/y.txt": "0" * 64})


def test_checked_files_downloads_from_a_base_address(tmp_path, monkeypatch):
    served = tmp_path / "served"
    (served / "bak_Cyrl").mkdir(parents=True)
    (served / "bak_Cyrl" / "test.tsv").write_text("index_id\tcategory\ttext\n", encoding="utf-8")
    monkeypatch.setenv("BASHKIR_PEFT_CACHE", str(tmp_path / "cache"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        files = {"bak_Cyrl/test.tsv": sha256_file(served / "bak_Cyrl" / "test.tsv")}
        folder = checked_files(base, files)
        assert folder.is_relative_to(tmp_path / "cache")
        assert (folder / "bak_Cyrl" / "test.tsv").read_bytes() == (served / "bak_Cyrl" / "test.tsv").read_bytes()
        with pytest.raises(DataError, match="cannot download"):
            checked_files(base, {"bak_Cyrl/missing.tsv": "0" * 64})
    finally:
        server.shutdown()
