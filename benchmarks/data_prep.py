"""Benchmark of the data preparation: documents/s, MB/s and peak memory.

Usage (from the repository root):

    .venv/bin/python benchmarks/data_prep.py                  # demo and full corpus
    .venv/bin/python benchmarks/data_prep.py --only demo
    .venv/bin/python benchmarks/data_prep.py --num-proc 2 --shared ../shared

MB/s counts the UTF-8 bytes of the input texts (uncompressed). Peak RSS is reported for
the main process, the largest worker and all processes together (sampled with psutil). CPU
seconds (user + system) of the main process and of the workers are printed too: on a
shared machine they say more than the wall time.
Output folders are temporary and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class TreeRSS:
    """Peak RSS of this process plus its worker processes (psutil, sampled every 0.2 s)."""

    def __enter__(self):
        import psutil

        self.me = psutil.Process()
        self.peak_total = self.peak_worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                kids = [p.memory_info().rss for p in self.me.children(recursive=True)]
                total = self.me.memory_info().rss + sum(kids)
            except psutil.Error:
                continue
            self.peak_total = max(self.peak_total, total)
            self.peak_worker = max([self.peak_worker, *kids])
            self._stop.wait(0.2)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run(name: str, corpus: Path, num_proc: int) -> dict:
    from bashkir_peft.config.data import DataPrepParams
    from bashkir_peft.data.prepare import prepare

    cpu0 = _cpu()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp, TreeRSS() as rss:
        params = DataPrepParams(corpus=str(corpus), output_dir=str(Path(tmp) / "out"), num_proc=num_proc)
        manifest = prepare(params, log=lambda line: print(f"  [{name}] {line}", flush=True))
    cpu1 = _cpu()
    c, r = manifest.counts, manifest.resources
    wall = r["wall_time_s"]
    return {
        "corpus": name, "documents": c["documents_read"], "characters": c["characters_read"],
        "mb": c["bytes_read"] / 1e6, "kept": c["documents_kept"], "wall_s": wall,
        "docs_per_s": c["documents_read"] / wall, "mb_per_s": c["bytes_read"] / 1e6 / wall,
        "peak_rss_main_mib": r["peak_rss_mib"], "peak_rss_worker_mib": rss.peak_worker / 2**20,
        "peak_rss_total_mib": rss.peak_total / 2**20,
        "cpu_main_s": cpu1[0] - cpu0[0], "cpu_workers_s": cpu1[1] - cpu0[1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.environ.get("BASHKIR_PEFT_SHARED", str(REPO.parent / "shared")))
    ap.add_argument("--only", choices=["demo", "full"], default=None)
    ap.add_argument("--num-proc", type=int, default=2)
    args = ap.parse_args()
    corpora = {"demo": Path(args.shared) / "corpus" / "bashkir-demo.jsonl.gz",
               "full": Path(args.shared) / "corpus" / "bashkir-mix"}
    rows = [run(n, p, args.num_proc) for n, p in corpora.items() if args.only in (None, n)]
    print(f"\ncores available: {len(os.sched_getaffinity(0))}, num_proc: {args.num_proc}")
    print(f"load average at the end: {os.getloadavg()}")
    print("| corpus | documents | input MB | kept | wall s | documents/s | MB/s | CPU s main | CPU s workers "
          "| peak RSS main MiB | peak RSS one worker MiB | peak RSS all processes MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} | {r['documents']:,} | {r['mb']:.1f} | {r['kept']:,} | {r['wall_s']:.1f} | "
              f"{r['docs_per_s']:.1f} | {r['mb_per_s']:.2f} | {r['cpu_main_s']:.0f} | {r['cpu_workers_s']:.0f} | "
              f"{r['peak_rss_main_mib']:.0f} | {r['peak_rss_worker_mib']:.0f} | {r['peak_rss_total_mib']:.0f} |")


if __name__ == "__main__":
    main()
