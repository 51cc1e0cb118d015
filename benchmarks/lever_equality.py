"""Does a training lever keep the numbers? Per-step training losses with the lever on and off,
against the seed-to-seed spread measured in the same run.

For one lever (a TrainParams field and its two values, default: chunked_loss true / false),
SmolLM2-135M trains ``--steps`` steps (batch ``--batch-size`` (8) x block 128, the loss logged every step) for
each of two seeds, with the lever on and off: four runs. A lever that claims the same numbers
must give bit-identical losses; any other is accepted only if, at every logged step, |loss(on)
- loss(off)| (same seed) is at most half the seed-to-seed standard deviation, estimated from
the lever-off runs as the root mean square over steps of |loss(seed a) - loss(seed b)| / sqrt(2)
(the per-step standard deviation of two values, pooled over steps).

Usage:
    BASHKIR_PEFT_TOKENIZERS=../shared/tokenizers \\
    .venv/bin/python benchmarks/lever_equality.py [--field chunked_loss] [--method lora] [--steps 8] [--batch-size 8]
        [--seeds 42 123] [--corpus ../shared/corpus/bashkir-demo.jsonl.gz] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import MODEL, REPO, make_data  # noqa: E402


def losses(field: str, value, method: str, seed: int, steps: int, data_dir: Path, out: Path,
           batch_size: int = 8) -> list[float]:
    from bashkir_peft.config.train import TrainParams
    from bashkir_peft.train.run import run_training

    params = TrainParams(model=MODEL, method=method, block_size=128, per_device_train_batch_size=batch_size,
                         max_steps=steps, logging_steps=1, eval_steps=10_000, save_steps=10_000,
                         max_eval_documents=1, seed=seed, data_dir=str(data_dir), output_dir=str(out),
                         **{field: value})
    record = run_training(params)
    assert record.status == "finished", record.reason
    return [h.loss for h in record.losses.train]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--field", default="chunked_loss")
    ap.add_argument("--on", default="true", help="the lever's value (YAML)")
    ap.add_argument("--off", default="false", help="the value without the lever (YAML)")
    ap.add_argument("--method", default="lora", choices=["full", "lora", "qlora"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seeds", nargs=2, type=int, default=[42, 123])
    ap.add_argument("--batch-size", type=int, default=8, help="blocks of 128 tokens per step")
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "bashkir-demo.jsonl.gz")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    import yaml

    from bashkir_peft.runtime import configure_threads

    configure_threads()
    on, off = yaml.safe_load(a.on), yaml.safe_load(a.off)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_data(a.corpus, Path(tmp) / "data")
        for seed in a.seeds:
            for name, value in (("on", on), ("off", off)):
                runs[(name, seed)] = losses(a.field, value, a.method, seed, a.steps, data_dir,
                                            Path(tmp) / f"{name}-{seed}", a.batch_size)
                print(f"{a.field}={value} seed {seed}: " + " ".join(f"{x:.6f}" for x in runs[(name, seed)]),
                      flush=True)
    s1, s2 = a.seeds
    seed_sd = math.sqrt(sum((x - y) ** 2 / 2 for x, y in zip(runs[("off", s1)], runs[("off", s2)])) / a.steps)
    diffs = {seed: [abs(x - y) for x, y in zip(runs[("on", seed)], runs[("off", seed)])] for seed in a.seeds}
    worst = max(max(d) for d in diffs.values())
    identical = all(runs[("on", s)] == runs[("off", s)] for s in a.seeds)
    accepted = identical or worst <= seed_sd / 2
    print(f"seed-to-seed SD of the per-step loss (lever off): {seed_sd:.6f}; largest |on - off| at one step: "
          f"{worst:.3g}; bit-identical: {identical}; accepted: {accepted} (threshold {seed_sd / 2:.6f})")
    if a.json:
        a.json.write_text(json.dumps({"field": a.field, "on": on, "off": off, "method": a.method,
                                      "losses": {f"{k[0]}-{k[1]}": v for k, v in runs.items()},
                                      "seed_sd": seed_sd, "max_abs_diff": worst, "identical": identical,
                                      "accepted": accepted}, indent=2))
    return 0 if accepted else 1


if __name__ == "__main__":
    sys.exit(main())
