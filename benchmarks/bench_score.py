"""Whole-process benchmark of ``acbmse score`` against a numpy.dot roofline and the original.

Usage (from the repository root, after ``pip install -e ".[test]"``; needs about
3 GB free under --dir and 6 GB of RAM):

    flock /tmp/acbmse-bench.lock python benchmarks/bench_score.py

It writes a pair of float32 ``.npy`` files of 20,000 x 128 x 88 (about 900 MB each)
and a smaller pair (first 5,000 samples), reads them once so the page cache is warm,
then times separate processes, interleaved, ``--repeats`` times each (medians):

- ``acbmse score PRED TARGET --quiet`` (the console script, whole process);
- the roofline: a Python process that memory-maps both files and computes
  ``numpy.dot`` of them (flattened), the least work that reads every byte once;
- the original ``acb_mse.ACBLoss`` (torch, CPU) looped over batches of 250 of the
  same memory-mapped files. It is slow, so it runs on the first ``--orig-samples``
  samples and is extrapolated linearly to the whole dataset from the per-sample
  time above a process that only does the imports and the memory maps.

Peak resident memory (``ru_maxrss`` of each child) is reported for ``acbmse score``
at both dataset sizes. Then, in this process, the Dask path
(``acbmse_rs.dask.acb_mse`` on ``da.from_array`` blocks of 1,000 samples, default
threaded scheduler) is timed against in-memory ``acbmse_rs.acb_mse`` on the same
arrays loaded into RAM. The data is deleted at the end unless ``--keep``.
Results go to stdout, ``benchmarks/RESULTS_score.md`` and
``benchmarks/results/score-*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (128, 88)

DOT_CODE = """
import sys, numpy as np
a = np.load(sys.argv[1], mmap_mode="r")
b = np.load(sys.argv[2], mmap_mode="r")
print(float(np.dot(a.reshape(-1), b.reshape(-1))))
"""

ORIG_CODE = """
import sys, numpy as np, torch
from acb_mse import ACBLoss
a = np.load(sys.argv[1], mmap_mode="r")
b = np.load(sys.argv[2], mmap_mode="r")
n, batch = int(sys.argv[3]), 250
loss = ACBLoss()
total = 0.0
for i in range(0, n, batch):
    p = torch.from_numpy(np.ascontiguousarray(a[i:i + batch]))
    t = torch.from_numpy(np.ascontiguousarray(b[i:i + batch]))
    total += float(loss(p, t))
print(total)
"""

ORIG_IMPORT_CODE = """
import sys, numpy as np, torch
from acb_mse import ACBLoss
a = np.load(sys.argv[1], mmap_mode="r")
b = np.load(sys.argv[2], mmap_mode="r")
"""


def generate(directory: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """Writes DEEPCLEAN3D-like float32 pred/target files (the demo's generator)."""
    from acbmse_rs.cli import make_demo_data

    directory.mkdir(parents=True, exist_ok=True)
    pred, target = make_demo_data(str(directory), n_samples=n, shape=SHAPE, seed=seed)
    return Path(pred), Path(target)


def subset(src: Path, dst: Path, n: int) -> None:
    """Copies the first ``n`` samples of a .npy file into a new .npy file."""
    a = np.load(src, mmap_mode="r")
    out = np.lib.format.open_memmap(dst, "w+", a.dtype, (n, *a.shape[1:]))
    for lo in range(0, n, 1000):
        out[lo : lo + 1000] = a[lo : min(lo + 1000, n)]
    out.flush()
    del out, a


def warm(paths: list[Path]) -> None:
    """Reads files once so they sit in the page cache."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


# The peak RSS of a child as seen by wait4 includes the RSS its parent had when it
# forked (Linux carries the pre-exec high-water mark over exec), so each measured
# command runs under this small, fresh wrapper, whose own RSS is far below any
# command's: it reports the command's wall time and ru_maxrss.
WRAPPER = """
import os, subprocess, sys, time, json
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
out = proc.stdout.read().decode().strip()
print(json.dumps({"wall": wall, "maxrss_kib": usage.ru_maxrss, "status": status, "out": out}))
"""


def run_rusage(cmd: list[str]) -> tuple[float, int, str]:
    """Runs a process; returns (its wall seconds, its peak RSS in bytes, its stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{cmd} failed: {done.stderr}")
    res = json.loads(done.stdout.strip().splitlines()[-1])
    if res["status"] != 0:
        raise RuntimeError(f"{cmd} failed with status {res['status']}: {done.stderr}")
    return float(res["wall"]), int(res["maxrss_kib"]) * 1024, str(res["out"])


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_processes(
    big: tuple[Path, Path], small: tuple[Path, Path], repeats: int, orig_samples: int
) -> dict[str, Any]:
    # The console script itself (not a pyenv shim, which adds its own start-up time).
    acbmse = os.path.join(sysconfig.get_path("scripts"), "acbmse")
    score_cmd = [acbmse] if os.path.exists(acbmse) else [sys.executable, "-m", "acbmse_rs"]
    times: dict[str, list[float]] = {
        "acbmse_big": [],
        "dot_big": [],
        "acbmse_small": [],
        "dot_small": [],
        "orig_subset": [],
        "orig_import": [],
        "python_numpy_start": [],
        "acbmse_start": [],
    }
    rss: dict[str, list[int]] = {"acbmse_big": [], "acbmse_small": [], "dot_big": []}
    outputs: dict[str, str] = {}
    for _ in range(repeats):
        for key, cmd in (
            ("dot_big", [sys.executable, "-c", DOT_CODE, str(big[0]), str(big[1])]),
            ("acbmse_big", [*score_cmd, "score", str(big[0]), str(big[1]), "--quiet"]),
            ("acbmse_small", [*score_cmd, "score", str(small[0]), str(small[1]), "--quiet"]),
            ("dot_small", [sys.executable, "-c", DOT_CODE, str(small[0]), str(small[1])]),
            ("python_numpy_start", [sys.executable, "-c", "import numpy"]),
            ("acbmse_start", [*score_cmd, "--version"]),
        ):
            wall, peak, out = run_rusage(cmd)
            times[key].append(wall)
            if key in rss:
                rss[key].append(peak)
            outputs[key] = out
    for _ in range(max(1, repeats // 2)):
        wall, _, out = run_rusage(
            [sys.executable, "-c", ORIG_CODE, str(big[0]), str(big[1]), str(orig_samples)]
        )
        times["orig_subset"].append(wall)
        wall, _, _ = run_rusage([sys.executable, "-c", ORIG_IMPORT_CODE, str(big[0]), str(big[1])])
        times["orig_import"].append(wall)
    med = {k: median(v) for k, v in times.items()}
    n_big = int(np.load(big[0], mmap_mode="r").shape[0])
    orig_full = (
        med["orig_import"] + (med["orig_subset"] - med["orig_import"]) * n_big / orig_samples
    )
    return {
        "times_s": times,
        "median_s": med,
        "peak_rss_bytes": {k: max(v) for k, v in rss.items()},
        "orig_extrapolated_s": orig_full,
        "ratio_acbmse_over_dot": med["acbmse_big"] / med["dot_big"],
        "ratio_orig_over_acbmse": orig_full / med["acbmse_big"],
        "outputs": outputs,
    }


def bench_dask(big: tuple[Path, Path], repeats: int) -> dict[str, Any]:
    """Dask threaded path vs in-memory acb_mse on the same in-RAM arrays."""
    import acbmse_rs
    import dask.array as da
    from acbmse_rs import dask as acb_dask

    pred, target = np.load(big[0]), np.load(big[1])
    chunks = (1000, *SHAPE)

    def in_memory() -> float:
        return acbmse_rs.acb_mse(pred, target)

    # The dask arrays exist before the timing starts, as they would when read from
    # zarr or HDF5: dask 2026.8's from_array copies a NumPy input whole (and, unless
    # name=False, hashes it), which is from_array's cost, not the reduction's.
    p = da.from_array(pred, chunks=chunks, name=False)
    t = da.from_array(target, chunks=chunks, name=False)

    def with_dask() -> float:
        return float(acb_dask.acb_mse(p, t).compute(scheduler="threads"))

    results: dict[str, list[float]] = {"in_memory": [], "dask_threads": []}
    values = {"in_memory": in_memory(), "dask_threads": with_dask()}
    for _ in range(repeats):
        for key, fn in (("in_memory", in_memory), ("dask_threads", with_dask)):
            start = time.perf_counter()
            fn()
            results[key].append(time.perf_counter() - start)
    med = {k: median(v) for k, v in results.items()}
    return {
        "times_s": results,
        "median_s": med,
        "ratio_dask_over_in_memory": med["dask_threads"] / med["in_memory"],
        "values": values,
        "chunks": list(chunks),
    }


def blas_info() -> str:
    """The OpenBLAS core NumPy's dot uses in a child with this environment."""
    code = (
        "import numpy as np, threadpoolctl;"
        "print([(i.get('architecture'), i.get('num_threads')) "
        "for i in threadpoolctl.threadpool_info() if i.get('user_api') == 'blas'])"
    )
    try:
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        ).stdout.strip()
    except Exception as e:  # pragma: no cover - informational only
        return f"unknown ({e})"


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    p, d = res["processes"], res["dask"]
    med = p["median_s"]
    mib = 1024 * 1024
    lines = [
        "# `acbmse score`, Dask: benchmark results",
        "",
        f"Run {res['date']} on {res['machine']} ({res['cpus']} CPUs), Python {res['python']}, "
        f"acbmse-rs {res['version']}. Command: "
        "`flock /tmp/acbmse-bench.lock python benchmarks/bench_score.py`. "
        f"Data: float32 `.npy` pairs of {res['n_big']:,} x 128 x 88 "
        f"({res['bytes_big'] / 1e6:,.0f} MB each) and {res['n_small']:,} x 128 x 88, "
        "generated like `acbmse demo`, page cache warm. Each figure is the median of "
        f"{res['repeats']} whole-process runs, interleaved. numpy.dot roofline process: "
        f"OPENBLAS_CORETYPE={res['openblas_coretype'] or '(unset)'}, "
        f"OpenBLAS core/threads {res['blas']}.",
        "",
        "| process | wall time (s) | ratio |",
        "|---|---:|---:|",
        f"| numpy.dot of both memory-mapped files (roofline) | {med['dot_big']:.3f} | 1.00 |",
        f"| `acbmse score PRED TARGET --quiet` | {med['acbmse_big']:.3f} | "
        f"{p['ratio_acbmse_over_dot']:.2f} x roofline |",
        f"| original `acb_mse.ACBLoss` loop, batches of 250 (extrapolated) | "
        f"{p['orig_extrapolated_s']:.1f} | {p['ratio_orig_over_acbmse']:.0f} x slower "
        "than `acbmse score` |",
        f"| (start-up only: `python -c 'import numpy'`) | {med['python_numpy_start']:.3f} | |",
        f"| (start-up only: `acbmse --version`) | {med['acbmse_start']:.3f} | |",
        "",
        f"The original loop was run on the first {res['orig_samples']:,} samples "
        f"({med['orig_subset']:.2f} s, of which {med['orig_import']:.2f} s is the process "
        "doing only its imports and memory maps) and extrapolated linearly: "
        "import time + per-sample time x all samples.",
        "",
        "Peak resident memory (ru_maxrss) of `acbmse score` (default chunk: about 32 MiB of "
        "each input):",
        "",
        "| samples | file size (each) | peak RSS | wall (s) | numpy.dot wall (s) |",
        "|---:|---:|---:|---:|---:|",
        f"| {res['n_small']:,} | {res['bytes_small'] / 1e6:,.0f} MB | "
        f"{p['peak_rss_bytes']['acbmse_small'] / mib:.0f} MiB | {med['acbmse_small']:.3f} | "
        f"{med['dot_small']:.3f} |",
        f"| {res['n_big']:,} | {res['bytes_big'] / 1e6:,.0f} MB | "
        f"{p['peak_rss_bytes']['acbmse_big'] / mib:.0f} MiB | {med['acbmse_big']:.3f} | "
        f"{med['dot_big']:.3f} |",
        "",
        f"(The numpy.dot process maps both files whole: its peak RSS on the large pair was "
        f"{p['peak_rss_bytes']['dot_big'] / mib:,.0f} MiB.)",
        "",
        "Dask (`acbmse_rs.dask.acb_mse` on `da.from_array(..., name=False)` blocks of 1,000 "
        "samples made before timing, default threaded scheduler, graph construction and "
        "compute timed) against in-memory "
        f"`acbmse_rs.acb_mse` on the same {res['n_big']:,}-sample arrays held in RAM, "
        f"median of {res['repeats']}:",
        "",
        "| path | time (s) | ratio |",
        "|---|---:|---:|",
        f"| `acbmse_rs.acb_mse` (in memory) | {d['median_s']['in_memory']:.3f} | 1.00 |",
        f"| `acbmse_rs.dask.acb_mse(...).compute()` | {d['median_s']['dask_threads']:.3f} | "
        f"{d['ratio_dask_over_in_memory']:.2f} |",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default="/tmp/acbmse-bench-score", help="data folder")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--orig-samples", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS_score.md"))
    args = parser.parse_args()

    import acbmse_rs

    data = Path(args.dir)
    try:
        big = data / "big" / "pred.npy", data / "big" / "target.npy"
        if not (big[0].exists() and big[1].exists()):
            print(f"generating {args.samples:,} samples in {data / 'big'} ...", flush=True)
            big = generate(data / "big", args.samples)
        small = data / "small" / "pred.npy", data / "small" / "target.npy"
        (data / "small").mkdir(parents=True, exist_ok=True)
        if not (small[0].exists() and small[1].exists()):
            subset(big[0], small[0], args.small)
            subset(big[1], small[1], args.small)
        warm([*big, *small])
        print("timing processes ...", flush=True)
        processes = bench_processes(big, small, args.repeats, args.orig_samples)
        print(json.dumps(processes["median_s"], indent=1), flush=True)
        print("timing dask ...", flush=True)
        dask_res = bench_dask(big, args.repeats)
        res = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "version": acbmse_rs.__version__,
            "n_big": args.samples,
            "n_small": args.small,
            "bytes_big": big[0].stat().st_size,
            "bytes_small": small[0].stat().st_size,
            "repeats": args.repeats,
            "orig_samples": args.orig_samples,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
            "blas": blas_info(),
            "processes": processes,
            "dask": dask_res,
        }
        out = Path(args.out)
        write_markdown(out, res)
        results_dir = ROOT / "benchmarks" / "results"
        results_dir.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        (results_dir / f"score-{stamp}.json").write_text(json.dumps(res, indent=1, default=str))
        print(out.read_text())
    finally:
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
