"""The device check: does the GPU path work on this machine? (replaces ``make gpu-check``).

Made for a short slot on a borrowed GPU machine that has its own Python with torch,
transformers, peft, accelerate, pandas and pyarrow but none of this project's pins and no
package index: nothing is installed with pip. What the machine lacks travels in one carry
folder (under 60 MiB, :func:`carried_bytes`), prepared here with ``--prepare``:

- ``wheels/``: the wheels of :data:`WHEELS` (bitsandbytes, about 43 MB); a wheel whose
  package the machine lacks is unpacked into ``site/`` and put first on ``sys.path``;
- ``tokenizers/``: the two tiny models' tokenizers (GPT-2, DeepSeek/Llama);
- ``corpus.jsonl.gz``: the first documents of the demo corpus.

On the GPU it checks, printing one line per check (name, ok/FAILED, seconds), in about
5 minutes or less:

1. the gpu-marked tests (``pytest -m gpu``; skipped where pytest is missing);
2. for tiny models of two architectures (GPT-2 Conv1D, Llama): full fine-tuning with a
   bf16 request (float32 master weights under bf16 autocast), LoRA on a bf16 base (float32
   adapters), QLoRA (4-bit NF4, bf16 compute, paged AdamW 32-bit), each for a few steps;
   evaluation and generation of each run, placed on the GPU; the QLoRA merge (float32,
   cast once to bf16), its NLL against the unmerged model's within 2e-2 relative.

``--rehearsal`` runs the same checks on the CPU (float32 QLoRA compute, the Trainer's AdamW,
no gpu tests): the default test suite rehearses it on one architecture.

Usage (the README's "Checking a GPU machine" section):

    python benchmarks/device_check.py --prepare .device-carry          # here, once
    python benchmarks/device_check.py --carry .device-carry            # on the GPU machine
    python benchmarks/device_check.py --carry .device-carry --rehearsal --models tiny-gpt2

Exit status: 0 when every check passed, 1 otherwise, 2 without CUDA (unless --rehearsal).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "benchmarks")]

WHEELS = {"bitsandbytes": ("bitsandbytes==0.50.2", 45_000_000)}
"""Package -> (requirement, its wheel's size bound in bytes) of what travels as a wheel
(bitsandbytes 0.50.2's manylinux x86_64 wheel: about 43 MB)."""
TOKENIZERS = ("gpt2", "deepseek-llm-7b")
MODELS = ("tiny-gpt2", "tiny-llama")
METHODS = ("full", "lora", "qlora")
CORPUS_DOCS = 240
LIMIT_BYTES = 60 * 2**20


def carried_bytes(carry: Path) -> dict[str, int]:
    """Bytes of each part of a carry folder (wheels, tokenizers, corpus); the device check
    must travel in the 64 MiB a borrowed machine takes, so the total must stay under 60 MiB."""
    parts = {}
    for name in ("wheels", "tokenizers", "corpus.jsonl.gz"):
        path = carry / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        parts[name] = sum(f.stat().st_size for f in files)
    return parts


def prepare(carry: Path, corpus: Path, tokenizers: Path, with_wheels: bool = True) -> dict[str, int]:
    """Fill a carry folder (module docstring); wheels with ``pip download`` (needs an index)."""
    carry.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZERS:
        shutil.copytree(tokenizers / name, carry / "tokenizers" / name, dirs_exist_ok=True)
    with gzip.open(corpus, "rt", encoding="utf-8") as src, gzip.open(carry / "corpus.jsonl.gz", "wt",
                                                                      encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i == CORPUS_DOCS:
                break
            dst.write(line)
    if with_wheels:
        reqs = [req for req, _ in WHEELS.values()]
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--platform", "manylinux_2_24_x86_64", "-d", str(carry / "wheels"), *reqs], check=True)
    return carried_bytes(carry)


def use_wheels(carry: Path) -> list[str]:
    """Unpack each carried wheel whose package this Python lacks into ``carry/site`` and put
    that folder first on ``sys.path`` (no pip). Returns the packages taken from wheels."""
    import importlib.util

    site = carry / "site"
    taken = []
    for package in WHEELS:
        if importlib.util.find_spec(package) is not None:
            continue
        wheels = sorted((carry / "wheels").glob(f"{package}-*.whl"))
        if not wheels:
            raise SystemExit(f"device check: {package} is missing and no {package} wheel in {carry / 'wheels'}")
        with zipfile.ZipFile(wheels[-1]) as z:
            z.extractall(site)
        taken.append(wheels[-1].name)
    if taken:
        sys.path.insert(0, str(site))
    return taken


class Checks:
    """Runs named checks, printing one line each; remembers failures."""

    def __init__(self):
        self.failed: list[str] = []

    def run(self, name: str, fn) -> object:
        t0 = time.perf_counter()
        try:
            out = fn()
        except Exception as err:  # noqa: BLE001 - a check's failure is reported, the others go on
            self.failed.append(name)
            print(f"FAILED  {name}  ({time.perf_counter() - t0:.1f} s): {type(err).__name__}: {err}"[:400],
                  flush=True)
            return None
        print(f"ok      {name}  ({time.perf_counter() - t0:.1f} s){': ' + out if isinstance(out, str) else ''}",
              flush=True)
        return out


def gpu_tests() -> str:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-x",
           "tests/test_device.py", "tests/test_plan.py", "tests/test_train.py", "tests/test_distributed.py"]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150)
    last = (res.stdout.strip().splitlines() or ["(no output)"])[-1]
    if res.returncode not in (0, 5):
        raise RuntimeError(last + "\n" + res.stdout[-2000:])
    return last


def _train(model: str, method: str, data: Path, out: Path, gpu: bool):
    from bashkir_peft.train.run import run_training

    dtype = "bfloat16" if gpu or method != "qlora" else "float32"
    record = run_training({"model": model, "method": method, "dtype": dtype, "block_size": 64,
                           "per_device_train_batch_size": 4, "max_steps": 3, "eval_steps": 3, "save_steps": 3,
                           "logging_steps": 1, "max_eval_documents": 2, "data_dir": str(data),
                           "output_dir": str(out)})
    assert record.status == "finished", record.reason
    expected = "cuda:0" if gpu else "cpu"
    assert record.device.device == expected, record.device
    assert record.precision.master_dtype == "float32", record.precision
    if method == "qlora" and gpu:
        assert record.optimizer == "paged_adamw_32bit" and record.compute_dtype == "bfloat16"
    if method == "full":
        assert record.precision.autocast == "bfloat16" and record.precision.load_dtype == "float32"
    return (f"{record.global_step} steps, {record.tokens_per_s:,.0f} tokens/s, optimizer {record.optimizer}, "
            f"precision {record.precision}, peak GPU {record.cost.peak_gpu_mib} MiB")


def _evaluate(run_dir: Path, gpu: bool) -> str:
    from bashkir_peft.config.evaluate import EvalParams
    from bashkir_peft.evaluate.run import run_evaluation

    entry = run_evaluation(EvalParams(run_dir=str(run_dir), split="test", max_documents=2, max_length=64),
                           progress=False)
    assert entry.device.device == ("cuda:0" if gpu else "cpu"), entry.device
    return f"rolling perplexity {entry.metrics.perplexity:.1f} on {entry.device.device}"


def _generate(run_dir: Path, gpu: bool) -> str:
    from bashkir_peft.config.generate import GenerateParams
    from bashkir_peft.generate.run import run_generation

    record = run_generation(GenerateParams(run_dir=str(run_dir), n_prompts=1, prompt_words=4, max_new_tokens=8))
    assert record.device.device == ("cuda:0" if gpu else "cpu"), record.device
    return f"{record.summary.n} continuation(s) on {record.device.device}"


def _merge(run_dir: Path) -> str:
    import torch

    from bashkir_peft.models.trained import load_trained

    unmerged = load_trained(run_dir).model
    vocab = unmerged.get_input_embeddings().weight.shape[0]
    batch = torch.randint(0, vocab, (2, 32), generator=torch.Generator().manual_seed(0)).to(unmerged.device)

    def nll(m):
        with torch.no_grad():
            return float(m(input_ids=batch, labels=batch).loss)

    merged = load_trained(run_dir, merge=True)
    a, b = nll(unmerged), nll(merged.model)
    assert abs(a - b) <= 2e-2 * abs(a), (a, b)
    return f"NLL unmerged {a:.4f}, merged {b:.4f} ({merged.merge_note})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--carry", type=Path, default=REPO / ".device-carry", help="the carry folder")
    ap.add_argument("--prepare", type=Path, default=None, help="fill this carry folder, then exit")
    ap.add_argument("--no-wheels", action="store_true", help="--prepare without downloading wheels")
    ap.add_argument("--rehearsal", action="store_true", help="run the checks on the CPU")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    a = ap.parse_args(argv)
    if a.prepare is not None:
        shared = REPO.parent / "shared"
        sizes = prepare(a.prepare, shared / "corpus" / "bashkir-demo.jsonl.gz", shared / "tokenizers",
                        with_wheels=not a.no_wheels)
        print(f"carry folder {a.prepare}: {sizes}, total {sum(sizes.values()) / 2**20:.1f} MiB "
              f"(limit {LIMIT_BYTES / 2**20:.0f} MiB)")
        return 0 if sum(sizes.values()) < LIMIT_BYTES else 1

    import os

    os.environ["BASHKIR_PEFT_TOKENIZERS"] = str(a.carry / "tokenizers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if a.rehearsal:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path, even on a GPU machine
    taken = use_wheels(a.carry)
    import torch
    import transformers

    from train_throughput import make_data

    gpu = torch.cuda.is_available() and not a.rehearsal
    if not gpu and not a.rehearsal:
        print("device check: no CUDA device (torch.cuda.is_available() is False); --rehearsal runs it on the CPU",
              file=sys.stderr)
        return 2

    where = torch.cuda.get_device_name(0) if gpu else "CPU (rehearsal)"
    print(f"device check on {where}: torch {torch.__version__}, transformers {transformers.__version__}; "
          f"from carried wheels: {', '.join(taken) or 'nothing'}", flush=True)
    t0 = time.perf_counter()
    checks = Checks()
    if gpu:
        checks.run("gpu-marked tests", gpu_tests)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(a.carry / "corpus.jsonl.gz", Path(tmp) / "data")
        for model in a.models:
            for method in a.methods:
                run_dir = Path(tmp) / f"{model}-{method}"
                if checks.run(f"train {model} {method}", lambda: _train(model, method, data, run_dir, gpu)) is None:
                    continue
                checks.run(f"evaluate {model} {method}", lambda: _evaluate(run_dir, gpu))
                checks.run(f"generate {model} {method}", lambda: _generate(run_dir, gpu))
                if method == "qlora":
                    checks.run(f"merge {model} qlora", lambda: _merge(run_dir))
    print(f"device check: {'all passed' if not checks.failed else 'FAILED: ' + ', '.join(checks.failed)} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
