"""Resume from a checkpoint taken at the last step (issue 31): does the rerun train past the budget?

A tiny-gpt2 LoRA run (16-token blocks, constant learning rate, ``max_steps`` 3, a checkpoint
every 3 steps) is trained once uninterrupted, and once in a child process killed (SIGKILL)
in the final save, after ``checkpoint-3`` is complete; then started again. Prints, for both,
the global step, tokens seen, the steps of the logged training losses, the final validation
loss, and whether the final adapters are byte-identical.

Usage (from the repository root; ``PYTHONPATH`` picks the code under test):

    PYTHONPATH=$PWD/src .venv/bin/python benchmarks/resume_at_budget_end.py [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import bashkir_peft.train.run as run

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    run._save_final = killed
    run.run_training(json.loads(sys.argv[1]))
""")


def _data(out: Path, corpus: Path) -> Path:
    import pandas as pd

    from bashkir_peft.data.folder import write_presplit_folder

    rows = []
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"id": r["id"], "source": r["source"], "text": r["text"][:240]})
            if len(rows) == 32:
                break
    splits = {"train": rows[:24], "validation": rows[24:28], "test": rows[28:]}
    write_presplit_folder(out, {k: pd.DataFrame(v) for k, v in splits.items()}, "resume-bench",
                          {"kind": "file", "location": str(corpus)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "bashkir-demo.jsonl.gz")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="resume-bench-"))

    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.train.run import run_training

    common = dict(model="tiny-gpt2", method="lora", block_size=16, per_device_train_batch_size=4,
                  per_device_eval_batch_size=16, max_steps=3, eval_steps=3, save_steps=3, logging_steps=1,
                  max_eval_documents=2, lr_scheduler_type="constant", data_dir=str(_data(out / "data", args.corpus)))
    reference = run_training(TrainParams(**(common | {"output_dir": str(out / "reference")})))
    params = TrainParams(**(common | {"output_dir": str(out / "resumed")}))
    child = subprocess.run([sys.executable, "-c", CHILD, params.model_dump_json()], capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    resumed = run_training(params)
    adapter = Path("final") / "adapter_model.safetensors"
    same = (out / "resumed" / adapter).read_bytes() == (out / "reference" / adapter).read_bytes()
    for name, r in (("uninterrupted", reference), ("resumed", resumed)):
        print(f"{name}: global_step {r.global_step}, tokens_seen {r.tokens_seen}, "
              f"losses at steps {[x.step for x in r.losses.train]}, final eval_loss {r.final_eval.eval_loss:.6f}")
    print(f"final adapters byte-identical: {same}  (work folder {out})")


if __name__ == "__main__":
    main()
