"""Evaluation throughput: our ``rolling`` scorer against lm-evaluation-harness, side by side.

Same model (default smollm2-135m, float32), same texts (the first N documents of the demo
corpus), same max_length. The documents are cut into groups; for each group both scorers
run back to back, alternating which goes first, in one process, so a machine shared with
other jobs slows both alike. lm_eval runs ``HFLM.loglikelihood_rolling`` at its default
batch size (1); ours runs at ``--batch-size``. Prints tokens/s of each, their ratio, and
the largest bits_per_byte difference (per document and corpus-level). A faster mode that
changes the numbers (``--fast-dtype``, default bfloat16) is timed separately on the same
groups and reported with its deviation from the float32 numbers.

    .venv/bin/python benchmarks/eval_throughput.py --documents 24 --max-length 512
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def read_texts(path: Path, n: int, max_chars: int | None) -> list[str]:
    texts = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)["text"].strip()
            texts.append(t[:max_chars].strip() if max_chars else t)
            if len(texts) == n:
                break
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--corpus", default=str(REPO.parent / "shared" / "corpus" / "bashkir-demo.jsonl.gz"))
    ap.add_argument("--documents", type=int, default=24)
    ap.add_argument("--max-chars", type=int, default=None, help="cut each document to this many characters")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8, help="our batch size (lm_eval: its default)")
    ap.add_argument("--group", type=int, default=4, help="documents per interleaved group")
    ap.add_argument("--fast-dtype", default="bfloat16", choices=["bfloat16", "float16", "none"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    args = ap.parse_args(argv)

    os.environ.setdefault("BASHKIR_PEFT_TOKENIZERS", str(REPO.parent / "shared" / "tokenizers"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import copy

    import numpy as np
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from bashkir_peft.evaluate.run import score_rolling
    from bashkir_peft.models.loading import load_model
    from bashkir_peft.runtime import configure_threads

    threads = configure_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_model(args.model, "full", dtype="float32")
    model, tok = loaded.model.to(device).eval(), loaded.tokenizer
    texts = read_texts(Path(args.corpus), args.documents, args.max_chars)
    lm = HFLM(pretrained=model, tokenizer=tok, max_length=args.max_length)  # default batch_size
    fast = None
    if args.fast_dtype != "none":
        fast = copy.deepcopy(model).to(getattr(torch, args.fast_dtype)).eval()

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t0

    # warm-up (first-call allocations, kernel selection) on one short text, not timed
    score_rolling(model, tok, texts[:1], max_length=args.max_length, batch_size=args.batch_size)
    lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (texts[0][:200],), 0)], disable_tqdm=True)

    t_ours = t_theirs = t_fast = 0.0
    ours_nll, theirs_nll, fast_nll, tokens, nbytes = [], [], [], [], []
    for g, start in enumerate(range(0, len(texts), args.group)):
        group = texts[start : start + args.group]
        reqs = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(group)]
        def run_ours():
            return score_rolling(model, tok, group, max_length=args.max_length, batch_size=args.batch_size)
        def run_theirs():
            return lm.loglikelihood_rolling(reqs, disable_tqdm=True)
        if g % 2 == 0:
            o, dt_o = timed(run_ours)
            th, dt_t = timed(run_theirs)
        else:
            th, dt_t = timed(run_theirs)
            o, dt_o = timed(run_ours)
        t_ours += dt_o
        t_theirs += dt_t
        ours_nll += list(o["nll"])
        theirs_nll += [-x for x in th]
        tokens += list(o["tokens"])
        nbytes += list(o["bytes"])
        if fast is not None:
            f, dt_f = timed(lambda: score_rolling(fast, tok, group, max_length=args.max_length,
                                                   batch_size=args.batch_size))
            t_fast += dt_f
            fast_nll += list(f["nll"])
        print(f"group {g}: {sum(o['tokens'])} tokens  ours {dt_o:.2f}s  lm_eval {dt_t:.2f}s", flush=True)

    ours_nll, theirs_nll, tokens, nbytes = map(np.asarray, (ours_nll, theirs_nll, tokens, nbytes))
    n_tok = int(tokens.sum())
    bpb = lambda nll: nll / (math.log(2) * nbytes)  # noqa: E731
    corpus_bpb = lambda nll: float(nll.sum() / (math.log(2) * nbytes.sum()))  # noqa: E731
    print()
    print(f"model {args.model} (float32), device {device}, torch threads {threads}, {len(texts)} documents, "
          f"{n_tok} tokens, max_length {args.max_length}")
    print(f"ours    (batch_size {args.batch_size}): {n_tok / t_ours:9.1f} tokens/s  ({t_ours:.1f} s)")
    print(f"lm_eval (batch_size {lm.batch_size}): {n_tok / t_theirs:9.1f} tokens/s  ({t_theirs:.1f} s)")
    print(f"ratio ours / lm_eval: {t_theirs / t_ours:.2f}x")
    print(f"largest |bits_per_byte| difference, per document: {np.abs(bpb(ours_nll) - bpb(theirs_nll)).max():.2e}; "
          f"corpus: {abs(corpus_bpb(ours_nll) - corpus_bpb(theirs_nll)):.2e} (corpus bpb {corpus_bpb(ours_nll):.5f})")
    if fast is not None:
        fast_nll = np.asarray(fast_nll)
        print(f"fast mode ours {args.fast_dtype}: {n_tok / t_fast:9.1f} tokens/s ({t_fast / t_ours:.2f}x the "
              f"float32 time); bits_per_byte deviation from float32, per document max "
              f"{np.abs(bpb(fast_nll) - bpb(ours_nll)).max():.2e}, corpus "
              f"{corpus_bpb(fast_nll) - corpus_bpb(ours_nll):+.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
