"""The device check (benchmarks/device_check.py): what it carries fits the borrowed
machine's limit, and its CPU rehearsal (the same checks, the GPU parts left out) passes on
one architecture: QLoRA training, evaluation, generation and the merge."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("device_check", REPO / "benchmarks" / "device_check.py")
device_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_check)


def test_carried_files_total_under_60_mib(tmp_path, shared_dir):
    sizes = device_check.prepare(tmp_path / "carry", shared_dir / "corpus" / "bashkir-demo.jsonl.gz",
                                 shared_dir / "tokenizers", with_wheels=False)
    assert sizes["tokenizers"] > 0 and sizes["corpus.jsonl.gz"] > 0
    wheels = sum(bound for _req, bound in device_check.WHEELS.values())
    assert sizes["tokenizers"] + sizes["corpus.jsonl.gz"] + wheels < device_check.LIMIT_BYTES
    # a wheel prepared here (``--prepare``) must stay within the bound declared for it
    for package, (_req, bound) in device_check.WHEELS.items():
        for wheel in (REPO / ".device-carry" / "wheels").glob(f"{package}-*.whl"):
            assert wheel.stat().st_size <= bound, wheel


def test_cpu_rehearsal_passes(tmp_path, shared_dir):
    carry = tmp_path / "carry"
    device_check.prepare(carry, shared_dir / "corpus" / "bashkir-demo.jsonl.gz", shared_dir / "tokenizers",
                         with_wheels=False)
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "device_check.py"), "--carry", str(carry),
                          "--rehearsal", "--models", "tiny-gpt2", "--methods", "qlora"],
                         capture_output=True, text=True, env=env, timeout=600)
    checks = [" ".join(m.groups()) for m in re.finditer(r"^(ok|FAILED)\s+(.+?)  \(", res.stdout, re.MULTILINE)]
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert checks == [
        "ok train tiny-gpt2 qlora", "ok evaluate tiny-gpt2 qlora", "ok generate tiny-gpt2 qlora",
        "ok merge tiny-gpt2 qlora"]
    assert "device check: all passed" in res.stdout
