"""FLORES-200 devtest beside the published table: a base model and finished runs scored on the
four devtest sides (Bashkir, English, Russian, Tatar) under the Goldfish protocol (bits per
sentence on each sentence's second half) and the rolling protocol (bits per byte).

Every subject is scored through the evaluation stage's own function (``run_evaluation``) on
N evenly spaced sentences of each side (the same sentences for every subject), into
``OUT/<subject>``; a pass already there is skipped. Prints one line per pass (wall time
included) and, at the end, the table of bits per sentence beside the README's published numbers
(:mod:`bashkir_peft.report.published`). Nothing here writes a sentence anywhere.

    .venv/bin/python benchmarks/flores_goldfish.py OUT --model smollm2-135m \\
        --run /work/runs-after/cpu-demo/smollm2-135m-lora-r8-s42-3fc39fdc97ec -n 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SIDES = ("bak_Cyrl", "eng_Latn", "rus_Cyrl", "tat_Cyrl")


def main() -> None:
    from bashkir_peft.config.evaluate import EvalParams
    from bashkir_peft.config.external import ExternalSet
    from bashkir_peft.evaluate.run import run_evaluation
    from bashkir_peft.records import EvalRecord, RunFiles, read_record_if_any

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", action="append", default=[], help="a base model (registry name), zero-shot")
    ap.add_argument("--run", action="append", default=[], help="a finished run folder (read only)")
    ap.add_argument("-n", type=int, default=200, help="evenly spaced sentences of each side")
    ap.add_argument("--protocols", default="goldfish,rolling")
    ap.add_argument("--sides", default=",".join(SIDES))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    flores = REPO / "../shared/eval/flores200"
    sets = [ExternalSet(name=f"flores-{s[:3]}", format="lines", path=str(flores / f"{s}.devtest.gz"),
                        max_documents=args.n) for s in args.sides.split(",")]
    subjects = [({"model": m}, m) for m in args.model] + [({"run_dir": r}, Path(r).name) for r in args.run]
    for who, label in subjects:
        out = args.out / label
        for proto in args.protocols.split(","):
            for s in sets:
                rec = read_record_if_any(out / RunFiles.EVAL, EvalRecord)
                if rec and f"{proto}/{s.name}" in rec.evaluations:
                    continue
                t = time.perf_counter()
                e = run_evaluation(EvalParams(**who, external=s, protocol=proto, output_dir=str(out),
                                              batch_size=args.batch_size, num_threads=args.threads), progress=False)
                print(f"{label} {proto} {s.name}: {e.metrics.documents} sentences, {e.metrics.tokens} tokens, "
                      f"nll {e.metrics.nll:.1f} nats, bits_per_byte {e.metrics.bits_per_byte:.4f}, "
                      f"truncated {e.truncated}, {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
