"""Data preparation: corpus -> cleaned, Bashkir-only, de-duplicated train/validation/test.

Pipeline (:func:`prepare`), streaming, with bounded memory (steps 2 and 3 are the default
``cleaned`` data mode; the ``paper`` mode keeps every document as read, exact duplicates
only on request: see :class:`DataPrepParams`):

1. Read documents from exactly the source named (:mod:`bashkir_peft.data.corpus`).
2. Per document, in ``num_proc`` worker processes: clean (:mod:`bashkir_peft.text.cleaning`);
   split into sentences and keep the Bashkir ones (:mod:`bashkir_peft.text.langid`; a short
   ambiguous sentence, fewer than ``langid_min_letters`` letters and not recognised as
   Russian/English, follows its document); drop the document if nothing Bashkir is left
   or if it is shorter than ``min_chars``; compute its exact hash and MinHash signature.
   Kept documents are spilled to a temporary Parquet file, so the corpus is never held
   in memory.
3. De-duplicate over the whole corpus (:mod:`bashkir_peft.text.dedup`): exact, then near
   duplicates; one representative per cluster.
4. Split at document level from (id, seed) (:mod:`bashkir_peft.data.splitting`).
5. Audit the split: the share of test word 13-grams that occur in train, per source
   (:mod:`bashkir_peft.data.overlap`).
6. Write ``train.parquet``, ``validation.parquet``, ``test.parquet`` (columns id, source,
   text), ``doc_stats.parquet`` (per kept document: split, source, shuffled, characters,
   bytes, words) and, last, ``manifest.json`` (status, fingerprint, counts, parameters,
   drops by reason, overlap audit, statistics, examples of dropped text). Everything is written into a
   temporary folder next to ``output_dir`` and moved in at the end, the old manifest
   first removed: an interrupted run never leaves a split that looks complete.

Readers use :func:`read_manifest` and :func:`load_split`, which refuse a folder whose
manifest is missing, incomplete or does not match its files.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections import Counter, defaultdict, deque
from pathlib import Path

import numpy as np

from bashkir_peft.config.data import DataPrepParams
from bashkir_peft.data.corpus import CorpusSource, Document, iter_documents, resolve_source
from bashkir_peft.data.overlap import overlap_audit
from bashkir_peft.data.splitting import SPLITS, assign_split
from bashkir_peft.errors import DataError
from bashkir_peft.names import sha256_file
from bashkir_peft.provenance import ResourceMeter, environment_info
from bashkir_peft.records import DataFiles, DataManifest, write_record
from bashkir_peft.text import cleaning, dedup, langid

EXAMPLES_PER_REASON = 5


def _bashkir_in_context(sentence: str, letters: int, p: dict) -> bool:
    """Keep an ``other`` sentence of a Bashkir document? Yes when it is short (fewer than
    ``langid_min_letters`` letters), or when it is mostly Cyrillic with no letter of
    another alphabet (no Tatar җ, Kazakh қ, Chuvash ӑ, Latin diacritics ...): then the
    identifier found neither Russian nor foreign evidence, only too little Bashkir
    evidence (many Bashkir sentences have none of ҡ ғ ҙ ҫ: "Тау баштары асылды ла инде."),
    and its document is Bashkir."""
    if letters < p["langid_min_letters"]:
        return True
    f = langid.features(sentence)
    return f["foreign"] == 0 and f["latin"] * 2 < f["cyrillic"]


def _process_document(doc: Document, p: dict) -> dict:
    """Clean, language-filter and fingerprint one document (pure function of its input);
    in the ``paper`` data mode, only its exact hash (the text is kept as read)."""
    if p["data_mode"] == "paper":
        return {"id": doc.id, "source": doc.source, "shuffled": doc.shuffled, "chars_in": len(doc.text),
                "bytes_in": len(doc.text.encode("utf-8", "surrogatepass")), "clean": {}, "sent": Counter(),
                "sent_chars": Counter(), "examples": {}, "drop": None, "text": doc.text, "chars_out": len(doc.text),
                "hash": dedup.normalized_hash(doc.text), "minhash": None}
    cs = cleaning.CleanStats()
    text = cleaning.clean_text(doc.text, cs)
    res = {"id": doc.id, "source": doc.source, "shuffled": doc.shuffled, "chars_in": len(doc.text),
           "bytes_in": len(doc.text.encode("utf-8", "surrogatepass")),
           "clean": {k: v for k, v in vars(cs).items()}, "sent": Counter(), "sent_chars": Counter(),
           "examples": defaultdict(list)}
    if not text:
        res["drop"] = "empty_after_cleaning"
        res["chars_out"] = 0
        return res
    lines = []
    labelled: list[list[tuple[str, str, int]]] = []
    bak_letters = all_letters = 0
    for line in text.split("\n"):
        sents = []
        for s in langid.split_sentences(line):
            label, n = langid.classify_counted(s)
            sents.append((s, label, n))
            all_letters += n
            if label == "bak":
                bak_letters += n
        labelled.append(sents)
    doc_is_bak = all_letters > 0 and 2 * bak_letters >= all_letters
    kept_sentences: list[str] = []
    for sents in labelled:
        kept = []
        for s, label, n in sents:
            keep = label == "bak" or (doc_is_bak and label == "other" and _bashkir_in_context(s, n, p))
            if keep:
                kept.append(s)
            else:
                reason = f"sentence_{label}"
                res["sent"][reason] += 1
                res["sent_chars"][reason] += len(s)
                if len(res["examples"][reason]) < EXAMPLES_PER_REASON:
                    res["examples"][reason].append(s[:300])
        lines.append(" ".join(kept))
        kept_sentences.extend(kept)
    out = cleaning.normalize_whitespace("\n".join(lines))
    res["chars_out"] = len(out)
    if bak_letters == 0:
        res["drop"] = "not_bashkir"
        return res
    if len(out) < p["min_chars"]:
        res["drop"] = "too_short"
        return res
    res["drop"] = None
    res["text"] = out
    res["hash"] = dedup.normalized_hash(out)
    res["minhash"] = dedup.minhash_signature(kept_sentences, p["minhash_ngram"], p["minhash_num_perm"])
    return res


def _process_batch(args: tuple[list[Document], dict]) -> list[dict]:
    docs, p = args
    return [_process_document(d, p) for d in docs]


def clean_documents(texts: list[str], ids: list[str], sources: list[str], *, min_chars: int,
                    langid_min_letters: int) -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    """Data prep's per-document cleaning and filters (cleaning, Bashkir sentence filter,
    ``min_chars``) on documents held in memory, without de-duplication or splitting: the
    ``clean`` option of an external test set (:mod:`bashkir_peft.data.external`).

    Args:
        texts, ids, sources: the documents (equal lengths).
        min_chars, langid_min_letters: as in :class:`DataPrepParams`.

    Returns:
        ``(kept, drops)``: ``kept`` the ``(text, id, source)`` of each kept document,
        cleaned, in input order; ``drops`` documents dropped per reason
        (``empty_after_cleaning``, ``not_bashkir``, ``too_short``), every reason listed.
    """
    p = {"data_mode": "cleaned", "langid_min_letters": langid_min_letters, "min_chars": min_chars,
         "minhash_ngram": DataPrepParams.model_fields["minhash_ngram"].default,
         "minhash_num_perm": DataPrepParams.model_fields["minhash_num_perm"].default}
    kept, drops = [], dict.fromkeys(("empty_after_cleaning", "not_bashkir", "too_short"), 0)
    for text, id_, source in zip(texts, ids, sources):
        r = _process_document(Document(id=id_, source=source, text=text), p)
        if r["drop"]:
            drops[r["drop"]] += 1
        else:
            kept.append((r["text"], id_, source))
    return kept, drops


def _batches(docs, max_docs: int = 256, max_chars: int = 2_000_000):
    batch: list[Document] = []
    chars = 0
    for d in docs:
        batch.append(d)
        chars += len(d.text)
        if len(batch) >= max_docs or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


# --- the pipeline -----------------------------------------------------------------


class _Accumulator:
    """Counts of what was read, dropped and kept (small: no texts)."""

    def __init__(self, keep_repeats: bool = False) -> None:
        self.keep_repeats = keep_repeats
        self.read = 0
        self.chars_in = 0
        self.bytes_in = 0
        self.clean = Counter()
        self.sent = Counter()
        self.sent_chars = Counter()
        self.doc_drops = Counter()
        self.doc_drop_chars = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.ids: set[str] = set()
        self.raw_duplicates = 0
        self.raw_duplicate_chars = 0

    def add(self, r: dict) -> bool:
        """Count one processed document; False if it repeats an earlier id-less document
        (with ``keep_repeats`` the repeat is kept, its id suffixed ``#2``, ``#3``...)."""
        if r["id"] in self.ids and self.keep_repeats and r["id"].startswith("sha1:"):
            k = 2
            while f"{r['id']}#{k}" in self.ids:
                k += 1
            r["id"] = f"{r['id']}#{k}"
        if r["id"] in self.ids:
            if r["id"].startswith("sha1:"):  # id from the text: the same raw text again
                self.read += 1
                self.chars_in += r["chars_in"]
                self.raw_duplicates += 1
                self.raw_duplicate_chars += r["chars_out"]
                return False
            raise DataError(f"duplicate document id {r['id']!r}: ids must be unique across the corpus")
        self.ids.add(r["id"])
        self.read += 1
        self.chars_in += r["chars_in"]
        self.bytes_in += r["bytes_in"]
        self.clean.update(r["clean"])
        self.sent.update(r["sent"])
        self.sent_chars.update(r["sent_chars"])
        for k, v in r["examples"].items():
            room = EXAMPLES_PER_REASON - len(self.examples[k])
            self.examples[k].extend(v[:max(0, room)])
        if r["drop"]:
            self.doc_drops[r["drop"]] += 1
            self.doc_drop_chars[r["drop"]] += r["chars_out"]
        return True


def _spill_schema():
    import pyarrow as pa

    return pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("shuffled", pa.bool_())])


def _bounded_imap(pool, jobs, ahead: int):
    """Ordered results of ``_process_batch`` over ``jobs`` with at most ``ahead`` batches
    in flight (``Pool.imap`` would read the whole corpus into its queue if the reader is
    faster than the workers)."""
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.apply_async(_process_batch, (job,)))
        if len(pending) >= ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _pass_one(src: CorpusSource, params: DataPrepParams, tmp: Path, acc: _Accumulator):
    """Stream, process and spill. Returns (ids, lengths, hashes, signatures) of kept docs."""

    import pyarrow as pa
    import pyarrow.parquet as pq

    p = {"data_mode": params.data_mode, "langid_min_letters": params.langid_min_letters, "min_chars": params.min_chars,
         "minhash_ngram": params.minhash_ngram, "minhash_num_perm": params.minhash_num_perm}
    nproc = params.num_proc or len(os.sched_getaffinity(0))
    jobs = ((b, p) for b in _batches(iter_documents(src)))
    ids: list[str] = []
    lengths: list[int] = []
    hashes: list[bytes] = []
    sigs: list[np.ndarray] = []
    writer = pq.ParquetWriter(tmp / "spill.parquet", _spill_schema())
    pool = mp.get_context("spawn").Pool(nproc) if nproc > 1 else None
    try:
        results = _bounded_imap(pool, jobs, 2 * nproc) if pool else map(_process_batch, jobs)
        for batch in results:
            rows = []
            for r in batch:
                if acc.add(r) and r["drop"] is None:
                    ids.append(r["id"])
                    lengths.append(len(r["text"]))
                    hashes.append(r["hash"])
                    if r["minhash"] is not None:
                        sigs.append(r["minhash"])
                    rows.append({"id": r["id"], "source": r["source"], "text": r["text"], "shuffled": r["shuffled"]})
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=_spill_schema()))
    finally:
        writer.close()
        if pool:
            pool.terminate()
            pool.join()
    sig = np.stack(sigs) if sigs else np.zeros((0, params.minhash_num_perm), dtype=np.uint32)
    return ids, lengths, hashes, sig


def _write_splits(tmp: Path, params: DataPrepParams, drop: set[int]) -> tuple[dict, str]:
    """Pass two: read the spill, assign splits, write the split files and doc stats."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("source", pa.string()), ("text", pa.string())])
    writers = {s: pq.ParquetWriter(tmp / DataFiles.split(s), schema) for s in SPLITS}
    hashes = {s: hashlib.sha256() for s in SPLITS}
    stats_rows: dict[str, list] = {k: [] for k in ("id", "split", "source", "shuffled", "characters", "bytes", "words")}
    index = 0
    try:
        for batch in pq.ParquetFile(tmp / "spill.parquet").iter_batches(batch_size=512):
            out = {s: {"id": [], "source": [], "text": []} for s in SPLITS}
            for r in batch.to_pylist():
                i, index = index, index + 1
                if i in drop:
                    continue
                split = assign_split(r["id"], params.seed, params.train_fraction, params.validation_fraction)
                for k in ("id", "source", "text"):
                    out[split][k].append(r[k])
                h = hashes[split]
                for part in (r["id"], r["source"], r["text"]):
                    b = part.encode("utf-8")
                    h.update(len(b).to_bytes(8, "big"))
                    h.update(b)
                stats_rows["id"].append(r["id"])
                stats_rows["split"].append(split)
                stats_rows["source"].append(r["source"])
                stats_rows["shuffled"].append(r["shuffled"])
                stats_rows["characters"].append(len(r["text"]))
                stats_rows["bytes"].append(len(r["text"].encode("utf-8")))
                stats_rows["words"].append(len(r["text"].split()))
            for s in SPLITS:
                if out[s]["id"]:
                    writers[s].write_table(pa.table(out[s], schema=schema))
    finally:
        for w in writers.values():
            w.close()
    pq.write_table(pa.table(stats_rows), tmp / DataFiles.DOC_STATS)
    fingerprint = hashlib.sha256("".join(f"{s}:{hashes[s].hexdigest()};" for s in SPLITS).encode()).hexdigest()
    return stats_rows, fingerprint


def _drops_table(acc: _Accumulator, exact: int, exact_chars: int, near: int, near_chars: int) -> list[dict]:
    rows = []
    for reason in sorted(acc.sent):
        rows.append({"reason": reason, "level": "sentence", "documents": None,
                     "sentences": acc.sent[reason], "characters": acc.sent_chars[reason]})
    rows.append({"reason": "markup", "level": "fragment", "documents": None, "sentences": None,
                 "characters": acc.clean["markup_chars"]})
    rows.append({"reason": "invisible_characters", "level": "character", "documents": None, "sentences": None,
                 "characters": acc.clean["invisible_chars"]})
    for reason in ("empty_after_cleaning", "not_bashkir", "too_short"):
        rows.append({"reason": reason, "level": "document", "documents": acc.doc_drops[reason], "sentences": None,
                     "characters": acc.doc_drop_chars[reason]})
    rows.append({"reason": "exact_duplicate", "level": "document", "documents": exact, "sentences": None,
                 "characters": exact_chars})
    rows.append({"reason": "near_duplicate", "level": "document", "documents": near, "sentences": None,
                 "characters": near_chars})
    return rows


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2%}"


def _install(tmp: Path, out: Path) -> None:
    """Move the finished files of ``tmp`` into ``out``; manifest last (the commit point)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / DataFiles.MANIFEST).unlink(missing_ok=True)  # the old data is no longer complete
    for name in (*[DataFiles.split(s) for s in SPLITS], DataFiles.DOC_STATS):
        os.replace(tmp / name, out / name)
    os.replace(tmp / DataFiles.MANIFEST, out / DataFiles.MANIFEST)


def prepare(params: DataPrepParams, log=None) -> DataManifest:
    """Run the whole data preparation and write ``params.output_dir``.

    Args:
        params: validated parameters.
        log: optional callable receiving progress lines.

    Returns:
        The manifest (also written to ``output_dir/manifest.json``).

    Raises:
        DataError: bad input (see :mod:`bashkir_peft.data.corpus`), duplicate ids, nothing
            left after filtering, or a split left empty whose fraction is above 0 (the counts
            are in the message). Nothing in ``output_dir`` is changed then.
    """
    log = log or (lambda *_: None)
    src = resolve_source(params.corpus, params.corpus_kind, params.hub_split, params.hub_revision)
    out = params.out_dir
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    acc = _Accumulator(keep_repeats=not params.drops_exact_duplicates)
    try:
        with ResourceMeter() as meter:
            t0 = time.perf_counter()
            ids, lengths, hashes, sigs = _pass_one(src, params, tmp, acc)
            log(f"read {acc.read} documents, {acc.chars_in:,} characters; {len(ids)} left after filtering "
                f"({time.perf_counter() - t0:.1f} s)")
            if not ids:
                drops = ", ".join(f"{k}: {v}" for k, v in acc.doc_drops.items())
                raise DataError(f"nothing left after cleaning and language filtering: {acc.read} documents read "
                                f"({drops}); is the corpus Bashkir?")
            exact = dedup.exact_duplicates(hashes, lengths, ids) if params.drops_exact_duplicates else {}
            clusters, near = [], {}
            if params.data_mode == "cleaned":
                rest = [i for i in range(len(ids)) if i not in exact]
                clusters = dedup.near_duplicate_clusters(sigs, rest, params.near_dup_threshold,
                                                         params.minhash_num_perm)
                near = dedup.choose_representatives(clusters, lengths, ids)
            log(f"dedup: {len(exact)} exact, {len(near)} near duplicates in {len(clusters)} clusters")
            stats_rows, fingerprint = _write_splits(tmp, params, set(exact) | set(near))
            t1 = time.perf_counter()
            audit = overlap_audit(tmp, params.overlap_ngram)
            log(f"train/test overlap: {_share(audit[-1]['share_in_train'])} of the test {params.overlap_ngram}-grams "
                f"occur in train ({time.perf_counter() - t1:.1f} s)")
        counts = Counter(stats_rows["split"])
        empty = [s for s in SPLITS if getattr(params, f"{s}_fraction") > 0 and not counts.get(s)]
        if empty:
            raise DataError(f"too few documents to split: {', '.join(empty)} would be empty ("
                            + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS)
                            + f" of {len(stats_rows['id'])} documents kept from {acc.read} read); "
                            "use a larger corpus, or set the fraction of a split you do not want to 0")
        files = {}
        for s in SPLITS:
            f = tmp / f"{s}.parquet"
            files[f.name] = {"rows": counts.get(s, 0), "bytes": f.stat().st_size, "sha256": sha256_file(f)}
        manifest = DataManifest(**{
            "status": "complete",
            "fingerprint": fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "params": params.model_dump(mode="json"),
            "corpus": src.describe(),
            "langid_version": langid.VERSION,
            "counts": {
                "documents_read": acc.read, "characters_read": acc.chars_in, "bytes_read": acc.bytes_in,
                "documents_after_filtering": len(ids),
                "documents_kept": len(stats_rows["id"]),
                **{s: counts.get(s, 0) for s in SPLITS},
            },
            "cleaning": dict(acc.clean),
            "drops": _drops_table(acc, len(exact) + acc.raw_duplicates,
                                  sum(lengths[i] for i in exact) + acc.raw_duplicate_chars,
                                  len(near), sum(lengths[i] for i in near)),
            "near_duplicate_clusters": len(clusters),
            "overlap": audit,
            # every dropped duplicate and the document kept in its place (for audits)
            "duplicates": [{"dropped": ids[i], "kept": ids[k], "reason": reason}
                           for reason, pairs in (("exact_duplicate", exact), ("near_duplicate", near))
                           for i, k in sorted(pairs.items())],
            "examples": {k: v for k, v in sorted(acc.examples.items())},
            "files": files,
            "resources": meter.result(),
            "environment": environment_info(),
        })
        write_record(tmp / DataFiles.MANIFEST, manifest)
        (tmp / "spill.parquet").unlink()
        _install(tmp, out)
        log(f"wrote {out}: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS))
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
