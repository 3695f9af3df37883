"""Does the release profile's fat LTO + one codegen unit make the kernels faster?

Compares two builds of the same wheel side by side, in one run: each build is
unpacked into its own folder and loaded by its own worker process, and the driver
asks the workers in turn (alternating which goes first) to time one call, so both
builds see the same machine load. Reported: the median of the repeats, per input,
operation and thread count, and the ratio default/fat (> 1 means fat LTO is faster).

Build the two wheels first (see CONTRIBUTING.md, "Benchmarks"), e.g.:

    CARGO_TARGET_DIR=/tmp/lto/t-fat maturin build --release --out /tmp/lto/fat
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_TARGET_DIR=/tmp/lto/t-off maturin build --release --out /tmp/lto/off
    flock /tmp/acbmse-bench.lock python benchmarks/bench_lto.py \
        fat=/tmp/lto/fat/*.whl default=/tmp/lto/off/*.whl
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

CASES = {
    # name: (shape, repeats)
    "10x3x256x256": ((10, 3, 256, 256), 41),
    "1e8": ((100, 1_000_000), 11),
}
OPS = ("acb_mse", "acb_mse_grad", "acb_mse_per_sample")
HIT_RATE = 0.02


def make_pair(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A float32 (pred, target) pair with about 2% nonzero target elements."""
    rng = np.random.default_rng(12345)
    n = int(np.prod(shape))
    target = np.zeros(n, dtype=np.float32)
    hits = rng.random(n, dtype=np.float32) < HIT_RATE
    target[hits] = rng.random(int(hits.sum()), dtype=np.float32) + 0.5
    pred = target + np.float32(0.1) * rng.standard_normal(n, dtype=np.float32)
    return pred.reshape(shape), target.reshape(shape)


def worker(folder: str) -> None:
    """Serve timing requests ("case op threads") on stdin, one line of seconds each."""
    sys.path.insert(0, folder)
    import acbmse_rs

    assert Path(acbmse_rs.__file__).resolve().is_relative_to(Path(folder).resolve()), (
        acbmse_rs.__file__
    )
    data = {name: make_pair(shape) for name, (shape, _) in CASES.items()}
    funcs = {op: getattr(acbmse_rs, op) for op in OPS}
    print("ready", flush=True)
    for line in sys.stdin:
        case, op, threads = line.split()
        acbmse_rs.set_num_threads(int(threads))
        pred, target = data[case]
        t0 = time.perf_counter()
        funcs[op](pred, target)
        print(f"{time.perf_counter() - t0:.9f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="*", help="NAME=WHEEL, two of them")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeat-scale", type=int, default=1, help="multiply the repeats")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if len(args.builds) != 2:
        parser.error("give exactly two NAME=WHEEL builds")
    threads = [int(x) for x in args.threads.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        procs: dict[str, subprocess.Popen[str]] = {}
        for spec in args.builds:
            name, wheel = spec.split("=", 1)
            folder = Path(tmp) / name
            zipfile.ZipFile(wheel).extractall(folder)
            proc = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(folder)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            procs[name] = proc

        def timed(name: str, request: str) -> float:
            proc = procs[name]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(request + "\n")
            proc.stdin.flush()
            return float(proc.stdout.readline())

        names = list(procs)
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, hit rate {HIT_RATE}")
        header = f"| input | op | threads | {names[0]} ms | {names[1]} ms | {names[1]}/{names[0]} |"
        print(header)
        print("|" + "---|" * 6)
        for case, (_, repeats) in CASES.items():
            for n_threads in threads:
                for op in OPS:
                    request = f"{case} {op} {n_threads}"
                    for name in names:  # warm-up
                        timed(name, request)
                    times: dict[str, list[float]] = {name: [] for name in names}
                    for rep in range(repeats * args.repeat_scale):
                        order = names if rep % 2 == 0 else names[::-1]
                        for name in order:
                            times[name].append(timed(name, request))
                    med = {name: statistics.median(times[name]) * 1e3 for name in names}
                    ratio = med[names[1]] / med[names[0]]
                    print(
                        f"| {case} | {op} | {n_threads} | {med[names[0]]:.2f} | "
                        f"{med[names[1]]:.2f} | {ratio:.3f} |",
                        flush=True,
                    )
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()


if __name__ == "__main__":
    main()
