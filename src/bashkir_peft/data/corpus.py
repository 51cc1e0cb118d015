"""Read a corpus as a stream of documents, from exactly the source named (no fallback).

Sources (:func:`resolve_source`):

- ``hub:OWNER/NAME``: a Hugging Face Hub dataset (``text`` column; ``id``/``source``
  used when present), streamed with ``datasets``; fails with a clear error offline.
- a ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` file: records with a ``text`` field;
  ``id`` and ``source`` are used when present.
- a folder of such files (read in sorted name order), or a folder of ``.txt`` files
  (one document per file, recursively; id = relative path, source = the folder name).

Documents without an ``id`` get ``sha1:<hash of the text>``, so ids do not move when
documents are added. Relative paths are resolved against the repository root, so
notebooks executed from any folder read the same files.

Bad input raises :class:`~bashkir_peft.errors.DataError` naming the file and line:
an empty file or folder, invalid UTF-8, a line that is not JSON, a record without a
string ``text``, a duplicate id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bashkir_peft.errors import DataError
from bashkir_peft.jsonl import iter_json_lines
from bashkir_peft.settings import resolve_path

HUB_PREFIX = "hub:"
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


@dataclass(frozen=True)
class Document:
    """One input document."""

    id: str
    source: str
    text: str
    shuffled: bool | None = None


@dataclass(frozen=True)
class CorpusSource:
    """A resolved corpus: ``kind`` in hub/file/folder/txt; ``files`` for local sources."""

    kind: str
    location: str
    files: tuple[Path, ...] = ()
    hub_split: str = "full"
    hub_revision: str | None = None

    def describe(self) -> dict:
        """What the manifest records: kind, location, and each file's name and size."""
        out = {"kind": self.kind, "location": self.location}
        if self.kind == "hub":
            out.update(split=self.hub_split, revision=self.hub_revision or "unpinned")
        else:
            base = Path(self.location)
            out["files"] = [{"path": str(f.relative_to(base)) if f != base else f.name,
                             "bytes": f.stat().st_size} for f in self.files]
        return out


def _is_data_file(p: Path) -> bool:
    return p.is_file() and p.name.endswith(DATA_SUFFIXES)


def resolve_source(corpus: str, kind: str = "auto", hub_split: str = "full",
                   hub_revision: str | None = None) -> CorpusSource:
    """Decide where documents come from, before any reading.

    Args:
        corpus: ``hub:OWNER/NAME``, or a file/folder path.
        kind: ``auto`` (from ``corpus``), or force ``hub``, ``file``, ``folder``.
        hub_split: the Hub split (BashkirNLPWorld/bashkir-web-corpus has ``full`` and ``sample``).
        hub_revision: a Hub commit, or ``None`` for the default branch.

    Raises:
        DataError: the path does not exist, has an unsupported suffix, the folder holds
            no readable files or mixes .txt with data files, or ``kind`` does not match.
    """
    corpus = str(corpus).strip()
    if not corpus:
        raise DataError("corpus is empty: give a .jsonl/.jsonl.gz/.parquet file, a folder, or hub:OWNER/NAME")
    if corpus.startswith(HUB_PREFIX) or kind == "hub":
        hub_id = corpus[len(HUB_PREFIX):] if corpus.startswith(HUB_PREFIX) else corpus
        if kind not in ("auto", "hub") or "/" not in hub_id:
            raise DataError(f"corpus {corpus!r}: a Hub dataset is written hub:OWNER/NAME (with corpus_kind auto or hub)")
        return CorpusSource("hub", hub_id, hub_split=hub_split, hub_revision=hub_revision)
    path = resolve_path(corpus)
    if not path.exists():
        raise DataError(f"corpus {corpus}: no such file or folder ({path}); for a Hub dataset write hub:OWNER/NAME")
    if path.is_file():
        if kind not in ("auto", "file"):
            raise DataError(f"corpus {path} is a file but corpus_kind is {kind!r}")
        if not _is_data_file(path):
            raise DataError(f"corpus {path}: unsupported file type; use .jsonl, .jsonl.gz or .parquet (or a folder of .txt)")
        return CorpusSource("file", str(path), (path,))
    if kind not in ("auto", "folder"):
        raise DataError(f"corpus {path} is a folder but corpus_kind is {kind!r}")
    data = sorted(p for p in path.iterdir() if _is_data_file(p))
    txt = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if data and txt:
        raise DataError(f"corpus folder {path} mixes .txt files with .jsonl/.parquet files; keep one kind per folder")
    if data:
        return CorpusSource("folder", str(path), tuple(data))
    if txt:
        return CorpusSource("txt", str(path), tuple(txt))
    raise DataError(f"corpus folder {path} holds no .jsonl, .jsonl.gz, .parquet or .txt files")


def text_id(text: str) -> str:
    """The id of a document that has none: ``sha1:`` + 16 hex digits of its UTF-8 text."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _record(r: object, where: str, default_source: str) -> Document:
    if not isinstance(r, dict):
        raise DataError(f"{where}: a record must be a JSON object, got {type(r).__name__}")
    text = r.get("text")
    if text is None:
        raise DataError(f"{where}: record has no 'text' field (fields: {', '.join(sorted(r)) or 'none'})")
    if not isinstance(text, str):
        raise DataError(f"{where}: 'text' must be a string, got {type(text).__name__}")
    rid = r.get("id")
    rid = text_id(text) if rid is None or rid == "" else str(rid)
    source = r.get("source")
    shuffled = r.get("shuffled")
    return Document(rid, str(source) if source not in (None, "") else default_source, text,
                    bool(shuffled) if shuffled is not None else None)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in DATA_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _read_jsonl(path: Path) -> Iterator[Document]:
    default_source = _stem(path)
    for where, r in iter_json_lines(path):
        yield _record(r, where, default_source)


def _read_parquet(path: Path, batch_rows: int = 1024) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise DataError(f"{path}: no 'text' column (columns: {', '.join(names)})")
    if pf.metadata.num_rows == 0:
        raise DataError(f"{path}: the file is empty (no rows)")
    columns = [c for c in ("id", "source", "text", "shuffled") if c in names]
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        for r in batch.to_pylist():
            row += 1
            yield _record(r, f"{path} row {row}", _stem(path))


def _read_txt(files: tuple[Path, ...], base: Path) -> Iterator[Document]:
    for f in files:
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{f}: invalid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                            "re-encode the file as UTF-8") from None
        yield Document(str(f.relative_to(base)), base.name, text)


def _read_hub(src: CorpusSource) -> Iterator[Document]:
    try:
        import datasets

        ds = datasets.load_dataset(src.location, split=src.hub_split, streaming=True, revision=src.hub_revision)
        it = iter(ds)
        first = next(it, None)
    except Exception as err:  # noqa: BLE001 - offline/unknown id/bad split all land here
        raise DataError(
            f"cannot read Hub dataset {src.location!r} split {src.hub_split!r} ({type(err).__name__}); "
            "offline? download it on a connected machine and pass the local .parquet/.jsonl files"
        ) from None
    if first is None:
        raise DataError(f"Hub dataset {src.location!r} split {src.hub_split!r} is empty")
    index = 0
    for r in _chain(first, it):
        r = dict(r)
        if r.get("id") in (None, ""):
            r["id"] = f"{src.location}/{src.hub_split}/{index}"
        yield _record(r, f"{src.location} row {index}", src.location)
        index += 1


def _chain(first, rest):
    yield first
    yield from rest


def iter_documents(src: CorpusSource) -> Iterator[Document]:
    """Stream the documents of a resolved source, in a fixed order.

    Raises:
        DataError: bad input (see the module docstring); raised when the bad record is reached.
    """
    if src.kind == "hub":
        yield from _read_hub(src)
    elif src.kind == "txt":
        yield from _read_txt(src.files, Path(src.location))
    else:
        for f in src.files:
            yield from (_read_parquet(f) if f.name.endswith(".parquet") else _read_jsonl(f))
